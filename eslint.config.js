import js from "@eslint/js";
import tseslint from "typescript-eslint";
import globals from "globals";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", ".tools/**", "build/**", "coverage/**", "bench/peers/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      "no-console": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    // CLI, tests, benchmarks and examples talk to a terminal; library code logs through the logger only.
    files: ["src/cli.ts", "src/cli/**", "test/**", "bench/**", "examples/**", "scripts/**"],
    rules: { "no-console": "off" },
  },
  {
    // The browser demo page's own script runs in the browser.
    files: ["examples/browser/app.js"],
    languageOptions: { globals: { ...globals.browser } },
  },
);
