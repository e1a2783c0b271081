// Reliability scenarios (short form) for network faults between the zones'
// hosts, each zone's storage nodes in their own network namespace: see
// docs/reliability.md. Skipped, with the reason, where namespaces cannot be made.
import { shortScenarioTests } from '../reliability/short-run.js';

shortScenarioTests(['zone-partition', 'writer-storage-partition', 'one-way-partition']);
