// Reliability scenarios (short form) for faults of the compute: see docs/reliability.md.
import { shortScenarioTests } from '../reliability/short-run.js';

shortScenarioTests(['writer-kill', 'writer-pause', 'supervisor-kill', 'failover']);
