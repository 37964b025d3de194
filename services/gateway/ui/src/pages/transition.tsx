import { useState } from "preact/hooks";
import { REGISTRY, rpc } from "../api";
import { ErrorBox } from "../components/common";
import { int, stageName } from "../format";
import type { Model, ModelPolicy, ModelVersion, Stage, StagePolicy } from "../types";

const TARGETS: Stage[] = ["STAGE_STAGING", "STAGE_PRODUCTION", "STAGE_ARCHIVED"];

export function stagePolicy(policy: ModelPolicy | undefined, stage: Stage | undefined): StagePolicy {
  if (stage === "STAGE_STAGING") return policy?.staging ?? {};
  if (stage === "STAGE_PRODUCTION") return policy?.production ?? {};
  if (stage === "STAGE_ARCHIVED") return policy?.archived ?? {};
  return {};
}

/** Ask for a version to move to a stage. Shown only to who may (EDIT on the model: the page's
 * caller decides); says beforehand what the model's policy will want. */
export function RequestTransition(props: { model: Model; versions: ModelVersion[]; onDone: () => void }) {
  const live = props.versions.filter((v) => v.status !== "VERSION_STATUS_DELETED");
  const [version, setVersion] = useState(int(live[0]?.version));
  const current = live.find((v) => int(v.version) === version);
  const targets = TARGETS.filter((s) => s !== (current?.stage ?? "STAGE_NONE"));
  const [stage, setStage] = useState<Stage>(targets[0]);
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [done, setDone] = useState("");
  if (live.length === 0) return null;
  const target = targets.includes(stage) ? stage : targets[0];
  const policy = stagePolicy(props.model.policy, target);
  const from = policy.fromStages ?? [];
  const blocked = from.length > 0 && !from.includes(current?.stage ?? "STAGE_NONE");
  const open = current?.openRequest?.requestId ? current.openRequest : undefined;
  const needs = policy.approvalsRequired ?? 0;

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone("");
    try {
      const res = await rpc<{ request?: { status?: string } }>(REGISTRY, "RequestTransition", {
        ref: { model: props.model.name, version },
        stage: target,
        comment,
      });
      setComment("");
      setDone(
        res.request?.status === "REQUEST_STATUS_OPEN"
          ? `Requested: v${version} → ${stageName(target)} waits for approval.`
          : `v${version} moved to ${stageName(target)}.`,
      );
      props.onDone();
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card" aria-label="Request a transition">
      <h2>Request a transition</h2>
      <form class="request-form" onSubmit={submit} data-testid="request-form">
        <label class="inline-label" for="rt-version">
          Version
        </label>
        <select id="rt-version" value={version} onChange={(e) => setVersion(Number((e.target as HTMLSelectElement).value))}>
          {live.map((v) => (
            <option key={v.version} value={int(v.version)}>
              v{int(v.version)} ({stageName(v.stage)})
            </option>
          ))}
        </select>
        <label class="inline-label" for="rt-stage">
          to
        </label>
        <select id="rt-stage" value={target} onChange={(e) => setStage((e.target as HTMLSelectElement).value as Stage)}>
          {targets.map((s) => (
            <option key={s} value={s}>
              {stageName(s)}
            </option>
          ))}
        </select>
        <input
          type="text"
          class="grow"
          placeholder="Why (shown to approvers and kept in the history)"
          aria-label="Why"
          value={comment}
          onInput={(e) => setComment((e.target as HTMLInputElement).value)}
        />
        <button type="submit" class="btn primary" disabled={busy || blocked || !!open}>
          {busy ? "Requesting…" : "Request"}
        </button>
      </form>
      <p class="muted tiny policy-hint" data-testid="policy-hint">
        {open
          ? `v${version} already has an open request to ${stageName(open.toStage)}: it must be decided or cancelled first.`
          : blocked
            ? `${stageName(target)} takes versions from ${from.map((s) => stageName(s)).join(" or ")} only; v${version} is in ${stageName(current?.stage)}.`
            : needs === 0
              ? `${stageName(target)} needs no approval: the version moves at once.`
              : `${stageName(target)} needs ${needs} approval${needs === 1 ? "" : "s"} from the ${policy.approverRole || "member"} role${policy.allowSelfApproval ? "" : ", not yours"}.`}
      </p>
      {done && (
        <p class="notice small" role="status">
          {done}
        </p>
      )}
      {error && <ErrorBox error={error} title="Not requested" />}
    </section>
  );
}
