// Messages of the monitoring service and the dataset side of the artifacts service, as proto3 JSON.

import type { Int64 } from "./types";

export interface MonitorColumn {
  name: string;
  kind?: string;
  stattest?: string;
  threshold?: number;
}

export interface Monitor {
  name: string;
  model?: string;
  modelRef?: string;
  modelVersion?: Int64;
  deployment?: string;
  spec?: { columns?: MonitorColumn[]; predictionColumn?: string; windowRows?: Int64; windowSeconds?: Int64; driftShare?: number; task?: string };
  baseline?: { reference?: string; path?: string; rows?: Int64; setAt?: string };
  openWindow?: Int64;
  openWindowRows?: Int64;
  windowsClosed?: Int64;
  openAlerts?: Int64;
  createdBy?: string;
  createdAt?: string;
  project?: string;
}

export interface MonitorWindow {
  monitor?: string;
  window?: Int64;
  status?: string;
  rows?: Int64;
  labelledRows?: Int64;
  datasetDrift?: boolean;
  driftShare?: number;
  driftedColumns?: string[];
  performance?: Record<string, number>;
  openedAt?: string;
  closedAt?: string;
  profiledAt?: string;
  driftJson?: string;
}

/** One column's test in a window's drift result (services/monitoring/drift_types.py). */
export interface ColumnDrift {
  column: string;
  kind: string;
  stattest: string;
  statistic: number | string | null;
  p_value: number | string | null;
  threshold: number;
  drifted: boolean;
  missing_share: number;
  new_categories?: string[];
  out_of_range_share?: number;
  note?: string;
}

export interface MonitorAlert {
  alertId: string;
  monitor?: string;
  kind?: string;
  window?: Int64;
  message?: string;
  status?: string;
  retrainRequested?: boolean;
  raisedAt?: string;
  resolvedBy?: string;
  resolution?: string;
  resolvedAt?: string;
}

export interface FileChange {
  path: string;
  oldSize?: Int64;
  newSize?: Int64;
  oldDigest?: string;
  newDigest?: string;
  oldMode?: number;
  newMode?: number;
}
