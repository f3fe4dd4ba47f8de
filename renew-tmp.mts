import { loadModel } from './src/model/formats.js';
import { DEFAULT_RUNTIME_OPTIONS } from './src/model/model.js';
const models = await Promise.all(['diabetes', 'wine'].map((name) => loadModel({ name, file: `models/${name}/model.onnx`, card: `models/${name}/model.json` }, DEFAULT_RUNTIME_OPTIONS)));
const x = new Float32Array(13 * 20).fill(0.5);
const N = 20;
let cpu = 0, wall = 0, firstCold = 0, firstWarm = 0;
for (let i = 0; i < N; i++) {
  for (const m of models) await m.sample(x, 20, { samples: 2000, interval: 0.9, seed: 1 });
  let t = performance.now(); let c = process.cpuUsage();
  await models[0]!.sample(x, 20, { samples: 2000, interval: 0.9, seed: 1 });
  firstWarm += performance.now() - t;
  t = performance.now(); c = process.cpuUsage();
  await Promise.all(models.map((m) => m.releaseIdle!()));
  const d = process.cpuUsage(c); cpu += (d.user + d.system) / 1000; wall += performance.now() - t;
  t = performance.now();
  await models[0]!.sample(x, 20, { samples: 2000, interval: 0.9, seed: 1 });
  firstCold += performance.now() - t;
}
console.log(`renewal of both models: CPU ${(cpu / N).toFixed(1)} ms, wall ${(wall / N).toFixed(1)} ms; diabetes 20x2000 MC request after a renewal ${(firstCold / N).toFixed(1)} ms vs warm ${(firstWarm / N).toFixed(1)} ms (wall)`);
