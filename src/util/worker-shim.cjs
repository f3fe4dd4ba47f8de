// Worker entry when the caller runs from TypeScript (tests, `npm run dev`, `npm run train`): tsx's
// require hook is active in a worker started with `--import tsx`, its ESM hooks are not, so the
// TypeScript entry is required from here (startWorker in worker.ts). Built code (dist/) starts the .js
// entry directly.
const { workerData } = require('node:worker_threads');
require(workerData.entry);
