import fs from 'node:fs';
import { renderConfigurationDoc } from '../src/config/config-doc.js';

fs.writeFileSync(new URL('../docs/configuration.md', import.meta.url), renderConfigurationDoc());
