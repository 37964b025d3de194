import { useState } from "preact/hooks";
import { Link, useSearchParams } from "wouter-preact";
import { IDENTITY_ACCESS, REGISTRY, rpc } from "../api";
import { Chip, ErrorBox, Show, StageBadge, useAsync } from "../components/common";
import { enumName, fmtAgo, fmtTimestamp, int, stageName } from "../format";
import { mayDecide, permsOnModel, useMe, type Grant, type Perm } from "../session";
import type { HistoryEntry, Model, ModelPolicy, ModelVersion, StagePolicy, TransitionRequest } from "../types";
import { AsOfBar, AsOfView } from "./modelasof";
import { byWhen, HistoryTimeline } from "./modelhistory";
import { ModelLineage } from "./modellineage";
import { RequestTransition, stagePolicy } from "./transition";

interface ModelData {
  model: Model;
  versions: ModelVersion[];
  requests: TransitionRequest[];
  history: HistoryEntry[];
  grants: Grant[];
}

export function ModelPage(props: { name: string }) {
  const me = useMe();
  const [data, reload] = useAsync(async (signal): Promise<ModelData> => {
    const name = props.name;
    const [model, versions, requests, history, grants] = await Promise.all([
      rpc<{ model: Model }>(REGISTRY, "GetModel", { name }, signal).then((r) => r.model),
      rpc<{ versions?: ModelVersion[] }>(REGISTRY, "SearchModelVersions", { model: name, pageSize: 1000 }, signal).then(
        (r) => r.versions ?? [],
      ),
      rpc<{ requests?: TransitionRequest[] }>(REGISTRY, "ListTransitionRequests", { model: name }, signal).then(
        (r) => r.requests ?? [],
      ),
      rpc<{ entries?: HistoryEntry[] }>(REGISTRY, "History", { model: name, limit: 10000 }, signal)
        .then((r) => r.entries ?? [])
        .catch(() => [] as HistoryEntry[]), // timelines need a role; a grant-only caller sees the rest
      rpc<{ grants?: Grant[] }>(IDENTITY_ACCESS, "ListGrants", { principal: me.actor, effective: true }, signal)
        .then((r) => r.grants ?? [])
        .catch(() => [] as Grant[]),
    ]);
    return { model, versions, requests, history, grants };
  }, [props.name]);

  return (
    <div class="page model-page">
      <Show data={data} what="the model">
        {(d) => <ModelView data={d} onChanged={reload} />}
      </Show>
    </div>
  );
}

function ModelView(props: { data: ModelData; onChanged: () => void }) {
  const { model, versions, requests, history, grants } = props.data;
  const me = useMe();
  const perms = permsOnModel(me, grants, model.name, model.project ?? "default");
  const open = requests.filter((r) => r.status === "REQUEST_STATUS_OPEN");
  const closed = requests.filter((r) => r.status !== "REQUEST_STATUS_OPEN").slice(0, 10);
  const aliases = Object.entries(model.aliases ?? {}).sort(([a], [b]) => a.localeCompare(b));
  // time travel: `asof` in the URL is an instant (one of the history's), the page shows the
  // registry as it stood then
  const [params, setParams] = useSearchParams();
  const asOf = params.get("asof");
  const setAsOf = (at: string | null) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        if (at) next.set("asof", at);
        else next.delete("asof");
        return next;
      },
      { replace: true },
    );
  const timeline = byWhen(history);

  return (
    <>
      <div class="page-head">
        <div>
          <div class="crumbs">
            <Link href="/models">Models</Link> /
          </div>
          <h1>
            {model.name} {model.deleted && <Chip kind="warn">deleted</Chip>}
          </h1>
          {model.description && <p class="lede">{model.description}</p>}
        </div>
        <div class="model-facts muted small">
          <div>
            project <strong>{model.project ?? "default"}</strong>
          </div>
          <div>
            created by <strong>{model.createdBy}</strong> {fmtAgo(Date.parse(model.createdAt ?? ""))}
          </div>
        </div>
      </div>

      {!asOf && (
        <div class="summary-strip">
          <div class="card stat">
            <div class="stat-label">Latest version</div>
            <div class="stat-value">{int(model.latestVersion) ? `v${int(model.latestVersion)}` : "–"}</div>
          </div>
          <div class="card stat">
            <div class="stat-label">In Production</div>
            <div class="stat-value">
              {(model.productionVersions ?? []).length ? (model.productionVersions ?? []).map((v) => `v${v}`).join(", ") : "none"}
            </div>
          </div>
          <div class="card stat wide">
            <div class="stat-label">Aliases</div>
            <div class="stat-value chips">
              {aliases.length === 0 ? (
                <span class="muted">none</span>
              ) : (
                aliases.map(([a, v]) => (
                  <Chip key={a} kind="alias">
                    @{a} → v{v}
                  </Chip>
                ))
              )}
            </div>
          </div>
          <div class="card stat">
            <div class="stat-label">Pending requests</div>
            <div class="stat-value">{open.length}</div>
          </div>
        </div>
      )}

      <AsOfBar entries={timeline} asOf={asOf} onChange={setAsOf} />

      <div class="model-layout">
        <div class="model-main">
          {asOf ? (
            <AsOfView name={model.name} asOf={asOf} />
          ) : (
            <>
              <section aria-label="Pending transition requests" class="card">
                <h2>Pending transition requests</h2>
                {open.length === 0 ? (
                  <p class="muted small">No open requests.</p>
                ) : (
                  open.map((r) => (
                    <PendingRequest
                      key={r.requestId}
                      request={r}
                      model={model}
                      perms={perms}
                      onDecided={props.onChanged}
                    />
                  ))
                )}
              </section>

              <section class="card" aria-label="Versions">
                <h2>
                  Versions <span class="muted">({versions.length})</span>
                </h2>
                <table class="grid-table flush" aria-label="Versions">
                  <thead>
                    <tr>
                      <th class="num">Version</th>
                      <th>Stage</th>
                      <th>Status</th>
                      <th>Aliases</th>
                      <th>Run</th>
                      <th>Artifact</th>
                      <th>Created</th>
                    </tr>
                  </thead>
                  <tbody>
                    {versions.map((v) => (
                      <tr key={v.version} data-testid={`version-${int(v.version)}`}>
                        <td class="num strong">v{int(v.version)}</td>
                        <td>
                          <StageBadge stage={v.stage} />
                          {v.openRequest?.requestId && (
                            <span class="muted tiny"> → {stageName(v.openRequest.toStage)} requested</span>
                          )}
                        </td>
                        <td>{enumName(v.status, "VERSION_STATUS_")}</td>
                        <td>
                          {(v.aliases ?? []).map((a) => (
                            <Chip key={a} kind="alias">
                              @{a}
                            </Chip>
                          ))}
                        </td>
                        <td>
                          {v.runId ? (
                            <Link href={`/runs/${encodeURIComponent(v.runId)}`}>
                              <code>{v.runId.slice(0, 10)}</code>
                            </Link>
                          ) : (
                            "–"
                          )}
                        </td>
                        <td>
                          {v.artifactName}
                          {int(v.artifactVersion) ? `:v${int(v.artifactVersion)}` : ""}
                        </td>
                        <td title={fmtTimestamp(v.createdAt)}>
                          {v.createdBy} · {fmtAgo(Date.parse(v.createdAt ?? ""))}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </section>
              {perms.has("EDIT") && <RequestTransition model={model} versions={versions} onDone={props.onChanged} />}
            </>
          )}
          <ModelLineage name={model.name} versions={versions.map((v) => int(v.version))} asOf={asOf} />

          {!asOf && closed.length > 0 && (
            <section class="card" aria-label="Decided requests">
              <h2>Recent decisions</h2>
              <ul class="timeline">
                {closed.map((r) => (
                  <li key={r.requestId}>
                    <span class={`badge req-${enumName(r.status, "REQUEST_STATUS_").toLowerCase()}`}>
                      {enumName(r.status, "REQUEST_STATUS_")}
                    </span>{" "}
                    v{int(r.version)} {stageName(r.fromStage)} → {stageName(r.toStage)}, requested by{" "}
                    <strong>{r.requestedBy}</strong>
                    {(r.approvals ?? []).length > 0 && <> · approved by {(r.approvals ?? []).map((a) => a.by).join(", ")}</>}
                    {r.closedBy && <> · closed by {r.closedBy}</>}
                    {r.closeComment && <span class="muted"> “{r.closeComment}”</span>}
                    <span class="muted tiny"> {fmtTimestamp(r.closedAt ?? r.createdAt)}</span>
                  </li>
                ))}
              </ul>
            </section>
          )}
        </div>

        <aside class="model-side">
          <PolicyCard policy={model.policy} />
          <HistoryTimeline entries={history} asOf={asOf} />
        </aside>
      </div>
    </>
  );
}

function PendingRequest(props: {
  request: TransitionRequest;
  model: Model;
  perms: Set<Perm>;
  onDecided: () => void;
}) {
  const me = useMe();
  const r = props.request;
  const [comment, setComment] = useState("");
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const policy = stagePolicy(props.model.policy, r.toStage);
  const allowed = mayDecide(me, props.perms, r, !!policy.allowSelfApproval);
  const approvals = r.approvals ?? [];
  const already = approvals.some((a) => a.by === me.actor);

  const decide = async (method: "ApproveTransition" | "RejectTransition") => {
    setBusy(true);
    setError(null);
    try {
      await rpc(REGISTRY, method, {
        ref: { model: props.model.name, version: r.version },
        requestId: r.requestId,
        comment,
      });
      props.onDecided();
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="request" data-testid={`request-v${int(r.version)}`}>
      <div class="request-head">
        <strong>v{int(r.version)}</strong> <StageBadge stage={r.fromStage} /> → <StageBadge stage={r.toStage} />
        <span class="muted small">
          {" "}
          requested by <strong>{r.requestedBy}</strong> {fmtAgo(Date.parse(r.createdAt ?? ""))}
        </span>
      </div>
      {r.comment && <blockquote>{r.comment}</blockquote>}
      <div class="small">
        Approvals{" "}
        <strong>
          {approvals.length} of {r.approvalsRequired ?? 0}
        </strong>{" "}
        from role <code>{r.approverRole || "member"}</code>
        {approvals.length > 0 && <span class="muted"> · {approvals.map((a) => a.by).join(", ")}</span>}
      </div>
      {allowed && !already ? (
        <div class="decide">
          <input
            type="text"
            placeholder="Comment (optional)"
            aria-label={`Comment on v${int(r.version)}'s request`}
            value={comment}
            onInput={(e) => setComment((e.target as HTMLInputElement).value)}
          />
          <button type="button" class="btn approve" disabled={busy} onClick={() => decide("ApproveTransition")}>
            Approve
          </button>
          <button type="button" class="btn reject" disabled={busy} onClick={() => decide("RejectTransition")}>
            Reject
          </button>
        </div>
      ) : (
        <div class="muted tiny why-not">
          {already
            ? "You have approved this request."
            : r.requestedBy === me.actor && !policy.allowSelfApproval
              ? "You opened this request; the policy wants someone else to decide it."
              : `Deciding needs the ${r.approverRole || "member"} role on this model.`}
        </div>
      )}
      {error && <ErrorBox error={error} title="Not decided" />}
    </div>
  );
}

function PolicyCard(props: { policy: ModelPolicy | undefined }) {
  const rows: Array<[string, StagePolicy | undefined]> = [
    ["Staging", props.policy?.staging],
    ["Production", props.policy?.production],
    ["Archived", props.policy?.archived],
  ];
  return (
    <section class="card" aria-label="Approval policy">
      <h2>Approval policy</h2>
      <table class="kv policy">
        <thead>
          <tr>
            <th>into</th>
            <th>needs</th>
            <th>from</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([stage, p]) => (
            <tr key={stage}>
              <th scope="row">{stage}</th>
              <td>
                {(p?.approvalsRequired ?? 0) === 0
                  ? "no approval"
                  : `${p?.approvalsRequired} × ${p?.approverRole || "member"}${p?.allowSelfApproval ? " (self allowed)" : ""}`}
              </td>
              <td class="muted">{(p?.fromStages ?? []).map((s) => stageName(s)).join(", ") || "any"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="muted tiny">At most {props.policy?.maxProductionVersions || 1} version(s) in Production at once.</p>
    </section>
  );
}
