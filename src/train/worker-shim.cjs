// Worker entry when the trainer runs from TypeScript (tests, `npm run train`): tsx's require hook is
// active in a worker started with `--import tsx`, its ESM hooks are not, so the TypeScript entry is
// required from here. The built trainer (dist/) starts tune-worker.js directly.
const { workerData } = require('node:worker_threads');
require(workerData.entry);
