// The messages the UI reads, as proto3 JSON gives them: lowerCamelCase fields, fields at their
// default value left out (so nearly everything is optional), int64 as strings, enums by name,
// Timestamps as RFC 3339 strings, doubles as numbers or "NaN" / "Infinity" / "-Infinity".

export type Int64 = string;
export type Double = number | "NaN" | "Infinity" | "-Infinity";

export interface Experiment {
  experimentId: string;
  name?: string;
  description?: string;
  tags?: Record<string, string>;
  createdAtMs?: Int64;
  updatedAtMs?: Int64;
  deleted?: boolean;
  project?: string;
}

export type RunStatus = "RUN_STATUS_RUNNING" | "RUN_STATUS_FINISHED" | "RUN_STATUS_FAILED" | "RUN_STATUS_KILLED";

export interface RunInfo {
  runId: string;
  experimentId?: string;
  name?: string;
  status?: RunStatus;
  startTimeMs?: Int64;
  endTimeMs?: Int64;
  parentRunId?: string;
  source?: { gitCommit?: string; entryPoint?: string; host?: string; user?: string };
  deleted?: boolean;
}

export interface MetricSummary {
  key: string;
  last?: Double;
  lastStep?: Int64;
  lastTimestampMs?: Int64;
  min?: Double;
  max?: Double;
  count?: Int64;
}

export interface DatasetInput {
  name?: string;
  digest?: string;
  sourceType?: string;
  source?: string;
  context?: string;
  datasetSchema?: string;
  datasetProfile?: string;
}

export interface Run {
  info: RunInfo;
  params?: Record<string, string>;
  tags?: Record<string, string>;
  metrics?: MetricSummary[];
  datasets?: DatasetInput[];
}

export interface ValueComparison {
  key: string;
  values?: Array<{ present?: boolean; value?: string }>;
  differs?: boolean;
}

export interface MetricComparison {
  key: string;
  values?: Array<{ present?: boolean; summary?: MetricSummary }>;
}

export interface CompareRunsResponse {
  runs?: RunInfo[];
  params?: ValueComparison[];
  tags?: ValueComparison[];
  metrics?: MetricComparison[];
}

export interface MetricHistory {
  key?: string;
  steps?: Int64[];
  values?: Double[];
  timestampsMs?: Int64[];
  totalPoints?: Int64;
  downsampled?: boolean;
}

/** One history of a GetMetricHistories reply: the same fields, with the run it belongs to. */
export interface RunMetricHistory extends MetricHistory {
  runId?: string;
}

export interface GetMetricHistoriesResponse {
  /** One per (run, key) asked, run by run, then key by key. */
  histories?: RunMetricHistory[];
}

export type Stage = "STAGE_NONE" | "STAGE_STAGING" | "STAGE_PRODUCTION" | "STAGE_ARCHIVED";

export interface StagePolicy {
  approvalsRequired?: number;
  approverRole?: string;
  fromStages?: Stage[];
  allowSelfApproval?: boolean;
}

export interface ModelPolicy {
  staging?: StagePolicy;
  production?: StagePolicy;
  archived?: StagePolicy;
  maxProductionVersions?: number;
}

export interface Model {
  modelId?: string;
  name: string;
  description?: string;
  tags?: Record<string, string>;
  deleted?: boolean;
  latestVersion?: Int64;
  aliases?: Record<string, Int64>;
  productionVersions?: Int64[];
  policy?: ModelPolicy;
  createdBy?: string;
  createdAt?: string;
  updatedAt?: string;
  project?: string;
}

export interface Approval {
  by?: string;
  comment?: string;
  at?: string;
}

export interface TransitionRequest {
  requestId: string;
  model?: string;
  version?: Int64;
  fromStage?: Stage;
  toStage?: Stage;
  status?: string;
  requestedBy?: string;
  comment?: string;
  approvalsRequired?: number;
  approverRole?: string;
  approvals?: Approval[];
  closedBy?: string;
  closeComment?: string;
  createdAt?: string;
  closedAt?: string;
}

export interface ModelVersion {
  model?: string;
  version?: Int64;
  stage?: Stage;
  status?: string;
  runId?: string;
  artifactName?: string;
  artifactVersion?: Int64;
  manifestDigest?: string;
  description?: string;
  tags?: Record<string, string>;
  framework?: string;
  aliases?: string[];
  openRequest?: TransitionRequest;
  createdBy?: string;
  createdAt?: string;
  updatedAt?: string;
  stageChangedAt?: string;
}

export interface HistoryEntry {
  position?: Int64;
  streamVersion?: Int64;
  recordedAt?: string;
  actor?: string;
  type?: string;
  version?: Int64;
  summary?: string;
  payloadJson?: string;
  requestId?: string;
  /** When and by whom it happened: for imported history the source's (then `importedFrom` names
   * the source, and recordedAt/actor are the import itself). */
  occurredAt?: string;
  actedBy?: string;
  importedFrom?: string;
}

export interface VersionAsOf {
  version?: Int64;
  stage?: Stage;
  status?: string;
  aliases?: string[];
  runId?: string;
  artifactName?: string;
  artifactVersion?: Int64;
  manifestDigest?: string;
  createdBy?: string;
  createdAt?: string;
  stageRequestId?: string;
  stageRequestedBy?: string;
  stageApprovedBy?: string[];
  stageChangedBy?: string;
  stageChangedAt?: string;
  openRequestId?: string;
}

export interface ModelAsOf {
  modelId?: string;
  name?: string;
  asOf?: string;
  position?: Int64;
  streamVersion?: Int64;
  lastEventAt?: string;
  deleted?: boolean;
  aliases?: Array<{ alias: string; version?: Int64; setBy?: string; setAt?: string }>;
  productionVersions?: Int64[];
  versions?: VersionAsOf[];
  description?: string;
}

export interface LogHead {
  service: string;
  position?: Int64;
  lastRecordedAt?: string;
}

export interface LogEvent {
  service?: string;
  position?: Int64;
  streamId?: string;
  streamVersion?: Int64;
  eventId?: string;
  type?: string;
  schemaVersion?: number;
  payloadJson?: string;
  metadataJson?: string;
  recordedAt?: string;
}

export interface VerifyResult {
  service?: string;
  ok?: boolean;
  eventsChecked?: Int64;
  firstBadPosition?: Int64;
  reason?: string;
}

export interface ManifestEntry {
  path: string;
  digest: string;
  size?: Int64;
  mode?: number;
}

export interface ArtifactVersion {
  name: string;
  version?: Int64;
  kind?: string;
  manifestDigest?: string;
  fileCount?: Int64;
  totalSize?: Int64;
  message?: string;
  runId?: string;
  parentVersion?: Int64;
  aliases?: string[];
  tags?: Record<string, string>;
  createdBy?: string;
  createdAt?: string;
  entries?: ManifestEntry[];
}

export interface LineageNode {
  id: string;
  kind?: string;
  label?: string;
  attrsJson?: string;
  service?: string;
  position?: Int64;
  recordedAt?: string;
}

export interface LineageEdge {
  src: string;
  dst: string;
  relation?: string;
  service?: string;
  position?: Int64;
  recordedAt?: string;
  endedPosition?: Int64;
  endedAt?: string;
}

export interface LineageGraph {
  root?: string;
  nodes?: LineageNode[];
  edges?: LineageEdge[];
  truncated?: boolean;
}
