// Type-aware linting: the rule that matters most here is no-floating-promises,
// because a forgotten promise in a socket handler is a lost error.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', '.borealis/**', 'bench/results/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js', 'bin/*.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test() returns a promise the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: 'package', name: ['test', 'it', 'describe', 'suite'], package: 'node:test' }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
    },
  },
  {
    // The dashboard's browser script: plain JavaScript, no type information.
    files: ['src/dashboard/public/**/*.js', 'examples/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      parserOptions: { projectService: false, project: null },
      sourceType: 'module',
      globals: { window: 'readonly', document: 'readonly', location: 'readonly', sessionStorage: 'readonly', navigator: 'readonly', fetch: 'readonly', URLSearchParams: 'readonly', FormData: 'readonly', Node: 'readonly', uPlot: 'readonly', setInterval: 'readonly', console: 'readonly' },
    },
  },
);
