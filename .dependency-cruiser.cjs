/** Import rules for src/: checked by test/imports.test.ts (npm run test:unit). */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'Modules form layers; a cycle means two concerns are tangled.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'core-never-imports-a-face',
      comment: 'The core is a library: only the faces (cli, shield, service) and the entry point may use them.',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/(cli|shield|service)/', '^src/entry\\.ts$'] },
      to: { path: '^src/(cli|shield|service)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
