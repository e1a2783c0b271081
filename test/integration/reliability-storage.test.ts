// Reliability scenarios (short form) for faults of the storage: see docs/reliability.md.
import { shortScenarioTests } from '../reliability/short-run.js';

shortScenarioTests(['storage-node-kill', 'storage-node-pause', 'zone-loss', 'zone-plus-one', 'storage-node-wipe']);
