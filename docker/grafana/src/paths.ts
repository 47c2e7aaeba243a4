import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const DASHBOARD_DIR = resolve(REPO_ROOT, 'docker/grafana/dashboards');
