// Worker entry when the server runs from TypeScript (tests, `npm run dev`): tsx's require hook is active
// in a worker started from a file with `--import tsx`, its ESM hooks are not, so the TypeScript entry is
// required from here. The built server (dist/) starts mc-worker.js directly.
const { workerData } = require('node:worker_threads');
require(workerData.entry);
