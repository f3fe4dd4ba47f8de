import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastCounter, FastHistogram } from '../../src/server/fast-metrics.js';

describe('FastHistogram and FastCounter write exactly what prom-client writes', () => {
  it('histogram: same text for the same observations (bucket edges, +Inf, several series)', async () => {
    const buckets = [0.001, 0.01, 0.1, 1];
    const ours = new Registry();
    const theirs = new Registry();
    const a = new FastHistogram('req_seconds', 'Request time', ['route', 'status'], buckets, ours);
    const b = new Histogram({
      name: 'req_seconds',
      help: 'Request time',
      labelNames: ['route', 'status'],
      buckets,
      registers: [theirs],
    });
    const obs: [string, string, number][] = [
      ['/a', '200', 0.0005],
      ['/a', '200', 0.001], // on an edge: le is inclusive
      ['/a', '200', 0.05],
      ['/b', '404', 3], // above every bucket
      ['/a', '500', 0.1],
      ['/b', '404', 0.2],
    ];
    for (const [route, status, v] of obs) {
      a.observeValues([route, status], v);
      b.observe({ route, status }, v);
    }
    a.observe({ route: '/a', status: '200' }, 0.02);
    b.observe({ route: '/a', status: '200' }, 0.02);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('req_seconds_bucket{le="0.001",route="/a",status="200"} 2');
  });

  it('counter: same text', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const a = new FastCounter('rows_total', 'Rows', ['model'], ours);
    const b = new Counter({ name: 'rows_total', help: 'Rows', labelNames: ['model'], registers: [theirs] });
    a.incValues(['x'], 3);
    a.inc({ model: 'y' });
    a.incValues(['x'], 2);
    b.inc({ model: 'x' }, 3);
    b.inc({ model: 'y' });
    b.inc({ model: 'x' }, 2);
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('at(): the same series object for the same label values (three labels), and the same text as prom-client', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const a = new FastHistogram('http_seconds', 'HTTP', ['method', 'route', 'status_code'], [0.01, 0.1], ours);
    const b = new Histogram({
      name: 'http_seconds',
      help: 'HTTP',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.01, 0.1],
      registers: [theirs],
    });
    const s = a.at('POST', '/p', '200');
    expect(a.at('POST', '/p', '200')).toBe(s);
    expect(a.at('POST', '/p', '503')).not.toBe(s);
    expect(a.at('GET', '/p', '200')).not.toBe(s);
    s.observe(0.005);
    a.at('POST', '/p', '503').observe(0.5);
    a.at('GET', '/p', '200').observe(0.05);
    b.observe({ method: 'POST', route: '/p', status_code: '200' }, 0.005);
    b.observe({ method: 'POST', route: '/p', status_code: '503' }, 0.5);
    b.observe({ method: 'GET', route: '/p', status_code: '200' }, 0.05);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    const c = new FastCounter('n_total', 'N', ['lane'], ours);
    c.at('mc').inc();
    c.at('mc').inc(2);
    expect(await ours.metrics()).toContain('n_total{lane="mc"} 3');
    a.reset();
    expect(await ours.metrics()).not.toContain('http_seconds_bucket');
    expect(() => new FastCounter('four', 'x', ['a', 'b', 'c', 'd'], new Registry())).toThrow('1 to 3 labels');
  });
});
