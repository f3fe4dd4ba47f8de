/**
 * The deployment manifests agree with the code and the Dockerfile: image name, port, probe paths,
 * grace period, non-root and read-only root filesystem.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../src/config.js';
import { testApp } from './helpers/app.js';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  name: string;
  version: string;
  allowScripts?: Record<string, boolean>;
};
const dockerfile = readFileSync('Dockerfile', 'utf8');
type Doc = Record<string, any>;
const docs: { file: string; doc: Doc }[] = [];
for (const dir of ['deploy/k8s', 'deploy/kserve']) {
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml'))) {
    for (const d of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      expect(d.errors, `${dir}/${f}`).toEqual([]);
      docs.push({ file: `${dir}/${f}`, doc: d.toJS() as Doc });
    }
  }
}
const byKind = (kind: string): Doc[] => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);
const containers = (): { kind: string; c: Doc; pod: Doc }[] => [
  ...byKind('Deployment').map((d) => ({
    kind: 'Deployment',
    pod: d.spec.template.spec as Doc,
    c: d.spec.template.spec.containers[0] as Doc,
  })),
  ...byKind('InferenceService').map((d) => ({
    kind: 'InferenceService',
    pod: d.spec.predictor as Doc,
    c: d.spec.predictor.containers[0] as Doc,
  })),
];
const exposed = Number(/^EXPOSE\s+(\d+)/m.exec(dockerfile)![1]);

let app: FastifyInstance;
beforeAll(async () => {
  ({ app } = await testApp());
});
afterAll(() => app.close());

describe('deployment manifests', () => {
  it('parse, and hold a Deployment, a Service, an HPA and a KServe InferenceService', () => {
    expect(docs.map((d) => d.doc.kind).sort()).toEqual([
      'Deployment',
      'HorizontalPodAutoscaler',
      'InferenceService',
      'Service',
    ]);
  });
  it('the Dockerfile is multi-stage on node:24-bookworm-slim, non-root, with a healthcheck and an exec-form CMD, .npmrc before npm ci', () => {
    const from = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(from.length).toBeGreaterThanOrEqual(2);
    for (const image of from) expect(image).toBe('node:24-bookworm-slim');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n?.*\/health\/ready/m);
    expect(dockerfile).toMatch(/^CMD \["node",/m);
    expect(dockerfile.indexOf('COPY .npmrc')).toBeLessThan(dockerfile.indexOf('RUN npm ci'));
    // no install script runs (onnxruntime-node's downloads CUDA binaries): every npm via .npmrc, npm >= 11.16 via allowScripts
    expect(readFileSync('.npmrc', 'utf8')).toMatch(/^ignore-scripts=true$/m);
    expect(pkg.allowScripts?.['onnxruntime-node']).toBe(false);
    expect(exposed).toBe(loadConfig({}).PORT);
  });
  it('every container runs this image, on the exposed port, as non-root with a read-only root filesystem', () => {
    for (const { c, pod } of containers()) {
      expect(c.image).toBe(`${pkg.name}:${pkg.version}`);
      expect(c.ports[0].containerPort).toBe(exposed);
      const sc = { ...(pod.securityContext ?? {}), ...(c.securityContext ?? {}) };
      expect(sc.runAsNonRoot).toBe(true);
      expect(sc.runAsUser).not.toBe(0);
      expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    }
  });
  it('probe paths are real routes that answer 200', async () => {
    for (const { c } of containers()) {
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        if (!c[probe]) continue;
        const path = c[probe].httpGet.path as string;
        expect((await app.inject(path)).statusCode, path).toBe(200);
        expect([exposed, 'http']).toContain(c[probe].httpGet.port);
      }
    }
  });
  it('the termination grace period is longer than SHUTDOWN_GRACE_MS', () => {
    const d = byKind('Deployment')[0]!;
    const env = Object.fromEntries(
      (d.spec.template.spec.containers[0].env as { name: string; value: string }[]).map((e) => [e.name, e.value]),
    );
    const graceMs = loadConfig(env).SHUTDOWN_GRACE_MS;
    expect(d.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(graceMs);
  });
  it('the Service and the HPA point at the Deployment', () => {
    const d = byKind('Deployment')[0]!;
    const s = byKind('Service')[0]!;
    const h = byKind('HorizontalPodAutoscaler')[0]!;
    expect(s.spec.selector).toEqual(d.spec.template.metadata.labels);
    expect(s.spec.ports[0].targetPort).toBe(d.spec.template.spec.containers[0].ports[0].name);
    expect(h.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: d.metadata.name });
    expect(h.spec.minReplicas).toBeGreaterThanOrEqual(2);
  });
});
