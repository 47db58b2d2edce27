/** The value a policy worker stores in its `finished` cell for job `id` (WorkerInit.finished; ids grow past Int32). */
export const finishedMark = (id: number): number => id % 2 ** 31;
