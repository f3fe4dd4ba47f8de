/** `npm run openapi`: write openapi/openapi.json from the code (the drift test compares the two). */
import { writeFileSync } from 'node:fs';
import { generateOpenApi } from '../src/server/openapi.js';

writeFileSync('openapi/openapi.json', await generateOpenApi());
process.stdout.write('wrote openapi/openapi.json\n');
