/** The reference for HTTP overhead: a bare Fastify route answering predict's JSON body, no model. */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
const body = { model: 'diabetes', predictions: [207.82675170898438] };
app.post('/v1/models/diabetes/predict', async () => body);
app.get('/health/ready', async () => ({ status: 'ready', models: ['diabetes'] }));
await app.listen({ port: Number(process.env.PORT ?? 8090), host: '127.0.0.1' });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
