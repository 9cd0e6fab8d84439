// Lint: ESLint's and typescript-eslint's recommended rules, type-aware, for src/ and test/.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", ".wrangler/", "dist/", "worker-configuration.d.ts"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", ignoreRestSiblings: true },
      ],
    },
  },
  // Table-driven tests keep every case an async function, whether or not it awaits.
  { files: ["test/**/*.ts"], rules: { "@typescript-eslint/require-await": "off" } },
  // Plain JavaScript: Node scripts (dev/run.mjs, bench/), not type-checked.
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: globals.node },
  },
  // The moderation console's script runs in the browser, not in Node.
  { files: ["public/**/*.js"], languageOptions: { globals: globals.browser } },
);
