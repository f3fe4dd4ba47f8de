/**
 * The deployment manifests are valid for Kubernetes and KServe and agree with the code and the
 * Dockerfile. Valid: each manifest against the real schema of its kind, vendored with its provenance in
 * test/fixtures/k8s-schemas (strict: an unknown field is an error, as `kubectl --validate=strict`), with
 * ajv, offline; plus the KServe rules a schema cannot say (one container named kserve-container, one
 * exposed port, httpGet probes on the V2 health routes). Agree: image name, port, probe paths, grace
 * period, non-root and read-only root filesystem.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
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
// biome-ignore lint/suspicious/noExplicitAny: parsed YAML manifests, read and broken by field name
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

// --- schemas -----------------------------------------------------------------------------------------

/** apiVersion/kind → the vendored schema (test/fixtures/k8s-schemas/README.md). */
const SCHEMAS: Record<string, string> = {
  'apps/v1/Deployment': 'deployment-apps-v1.json',
  'v1/Service': 'service-v1.json',
  'autoscaling/v2/HorizontalPodAutoscaler': 'horizontalpodautoscaler-autoscaling-v2.json',
  'policy/v1/PodDisruptionBudget': 'poddisruptionbudget-policy-v1.json',
  'serving.kserve.io/v1beta1/InferenceService': 'inferenceservice-serving.kserve.io-v1beta1.json',
};
// the schemas' Kubernetes extensions (x-kubernetes-*) are annotations here; the OpenAPI formats are
// ranges and encodings the types already check closely enough, so every value passes them
const ajv = new Ajv({
  allErrors: true,
  strict: false,
  formats: Object.fromEntries(['int32', 'int64', 'date-time', 'byte', 'double', 'float'].map((f) => [f, true])),
});
const validators = new Map<string, ValidateFunction>();
function validator(doc: Doc): ValidateFunction | undefined {
  const file = SCHEMAS[`${doc.apiVersion}/${doc.kind}`];
  if (!file) return undefined;
  if (!validators.has(file))
    validators.set(file, ajv.compile(JSON.parse(readFileSync(join('test/fixtures/k8s-schemas', file), 'utf8'))));
  return validators.get(file);
}

/** A JSON pointer as a field path: /spec/containers/0/name → spec.containers[0].name. */
const fieldPath = (pointer: string): string =>
  pointer
    .split('/')
    .slice(1)
    .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : `${i ? '.' : ''}${p.replace(/~1/g, '/').replace(/~0/g, '~')}`))
    .join('');

/** One schema error as a sentence naming the field. */
function describeError(e: ErrorObject): string {
  const at = fieldPath(e.instancePath);
  const p = e.params as Record<string, unknown>;
  if (e.keyword === 'additionalProperties')
    return `${at ? `${at}.` : ''}${String(p.additionalProperty)}: unknown field`;
  if (e.keyword === 'required') return `${at || '(root)'}: missing required field "${String(p.missingProperty)}"`;
  return `${at || '(root)'}: ${e.message ?? e.keyword}`;
}

/** The schema errors of one manifest, each naming its field; a kind without a schema is an error too. */
function schemaErrors(doc: Doc): string[] {
  const validate = validator(doc);
  if (!validate) return [`no vendored schema for ${doc.apiVersion} ${doc.kind} (test/fixtures/k8s-schemas)`];
  return validate(doc) ? [] : [...new Set((validate.errors ?? []).map(describeError))];
}

// --- the KServe rules a schema cannot say -------------------------------------------------------------

/** The probes a KServe predictor container may have and the V2 health route each must call. */
const V2_PROBES: Record<string, string> = {
  readinessProbe: '/v2/health/ready',
  livenessProbe: '/v2/health/live',
  startupProbe: '/v2/health/ready',
};
const PROBE_HANDLERS = ['httpGet', 'tcpSocket', 'exec', 'grpc'];

/** One predictor container's probes: httpGet only, on the V2 health paths and the exposed port. */
function probeErrors(c: Doc, at: string): string[] {
  const errors: string[] = [];
  for (const probe of ['readinessProbe', 'livenessProbe']) if (!c[probe]) errors.push(`${at}.${probe}: missing`);
  for (const [probe, path] of Object.entries(V2_PROBES)) {
    const p = c[probe] as Doc | undefined;
    if (!p) continue;
    const handlers = PROBE_HANDLERS.filter((h) => h in p);
    if (handlers.length !== 1 || handlers[0] !== 'httpGet') {
      errors.push(
        `${at}.${probe}: KServe probes the model server with httpGet only, got ${handlers.join(', ') || 'none'}`,
      );
      continue;
    }
    if (p.httpGet.path !== path) errors.push(`${at}.${probe}.httpGet.path: expected ${path}, got ${p.httpGet.path}`);
    const port = c.ports?.[0];
    if (port && p.httpGet.port !== port.containerPort && p.httpGet.port !== port.name)
      errors.push(`${at}.${probe}.httpGet.port: ${p.httpGet.port} is not the exposed port ${port.containerPort}`);
  }
  return errors;
}

/**
 * KServe's rules for a custom predictor: exactly one container, named kserve-container (the name the
 * controller looks for: kserve pkg/constants InferenceServiceContainerName), exposing at most one port
 * (Knative routes to a single port), with httpGet probes on the V2 health routes.
 */
function kserveErrors(isvc: Doc): string[] {
  const containers = (isvc.spec?.predictor?.containers ?? []) as Doc[];
  const errors =
    containers.length === 1
      ? []
      : [`spec.predictor.containers: expected exactly one container (the model server), got ${containers.length}`];
  containers.forEach((c, i) => {
    const at = `spec.predictor.containers[${i}]`;
    if (c.name !== 'kserve-container') errors.push(`${at}.name: must be "kserve-container", got "${c.name}"`);
    if ((c.ports ?? []).length > 1) errors.push(`${at}.ports: KServe exposes one port, got ${c.ports.length}`);
    errors.push(...probeErrors(c, at));
  });
  return errors;
}

/** Every error of a manifest: its schema's and, for an InferenceService, KServe's rules. */
const manifestErrors = (doc: Doc): string[] => [
  ...schemaErrors(doc),
  ...(doc.kind === 'InferenceService' ? kserveErrors(doc) : []),
];

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
  it('parse, and hold a Deployment, a Service, an HPA, a PodDisruptionBudget and a KServe InferenceService', () => {
    expect(docs.map((d) => d.doc.kind).sort()).toEqual([
      'Deployment',
      'HorizontalPodAutoscaler',
      'InferenceService',
      'PodDisruptionBudget',
      'Service',
    ]);
  });
  it('each is valid against the real schema of its kind (strict), and the InferenceService keeps the KServe rules', () => {
    for (const { file, doc } of docs) expect(manifestErrors(doc), `${file} ${doc.kind}`).toEqual([]);
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
    const pdb = byKind('PodDisruptionBudget')[0]!;
    expect(pdb.spec.selector.matchLabels).toEqual(d.spec.template.metadata.labels);
    expect(pdb.spec.minAvailable).toBeLessThan(h.spec.minReplicas); // a drain can always move one
  });
});

describe('a broken manifest fails, with a message naming the field', () => {
  const copy = (kind: string): Doc => structuredClone(byKind(kind)[0]!);
  it('a misspelled field', () => {
    const d = copy('Deployment');
    d.spec.template.spec.containers[0].imagePullPolcy = d.spec.template.spec.containers[0].imagePullPolicy;
    delete d.spec.template.spec.containers[0].imagePullPolicy;
    expect(manifestErrors(d)).toEqual(['spec.template.spec.containers[0].imagePullPolcy: unknown field']);
    const isvc = copy('InferenceService');
    isvc.spec.predictor.minReplica = 1;
    expect(manifestErrors(isvc)).toEqual(['spec.predictor.minReplica: unknown field']);
    const top = copy('Service');
    top.spce = top.spec;
    expect(manifestErrors(top)).toEqual(['spce: unknown field']);
  });
  it('a wrong type', () => {
    const d = copy('Deployment');
    d.spec.replicas = '2';
    expect(manifestErrors(d)).toEqual(['spec.replicas: must be integer,null']);
    const isvc = copy('InferenceService');
    isvc.spec.predictor.containers[0].ports[0].containerPort = '8080';
    expect(manifestErrors(isvc)).toContain('spec.predictor.containers[0].ports[0].containerPort: must be integer');
    const h = copy('HorizontalPodAutoscaler');
    h.spec.metrics[0].resource.target.averageUtilization = 'seventy';
    expect(manifestErrors(h)).toContain('spec.metrics[0].resource.target.averageUtilization: must be integer,null');
  });
  it('a missing required field', () => {
    const d = copy('Deployment');
    delete d.spec.selector;
    expect(manifestErrors(d)).toEqual(['spec: missing required field "selector"']);
    const isvc = copy('InferenceService');
    delete isvc.spec.predictor.containers[0].name;
    expect(manifestErrors(isvc)).toEqual([
      'spec.predictor.containers[0]: missing required field "name"',
      'spec.predictor.containers[0].name: must be "kserve-container", got "undefined"',
    ]);
  });
  it('the KServe rules: two exposed ports, another container name, a non-httpGet probe, a probe off the V2 health routes', () => {
    const isvc = copy('InferenceService');
    const c = isvc.spec.predictor.containers[0];
    c.ports.push({ containerPort: 9090, protocol: 'TCP' });
    expect(manifestErrors(isvc)).toEqual(['spec.predictor.containers[0].ports: KServe exposes one port, got 2']);
    c.ports.pop();
    c.name = 'dropout-serve';
    c.livenessProbe = { exec: { command: ['true'] } };
    c.readinessProbe.httpGet.path = '/health/ready';
    expect(manifestErrors(isvc)).toEqual([
      'spec.predictor.containers[0].name: must be "kserve-container", got "dropout-serve"',
      'spec.predictor.containers[0].readinessProbe.httpGet.path: expected /v2/health/ready, got /health/ready',
      'spec.predictor.containers[0].livenessProbe: KServe probes the model server with httpGet only, got exec',
    ]);
    isvc.spec.predictor.containers.push(structuredClone(c));
    expect(manifestErrors(isvc)[0]).toBe(
      'spec.predictor.containers: expected exactly one container (the model server), got 2',
    );
  });
  it('a kind without a vendored schema', () => {
    expect(manifestErrors({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } })).toEqual([
      'no vendored schema for v1 ConfigMap (test/fixtures/k8s-schemas)',
    ]);
  });
});
