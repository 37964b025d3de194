import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Me } from "./api";

export const SessionContext = createContext<Me>({ actor: "", roles: [] });

export function useMe(): Me {
  return useContext(SessionContext);
}

export type Perm = "READ" | "EDIT" | "MANAGE" | "APPROVE" | "ADMIN";

export interface Grant {
  principal?: string;
  scopeKind?: string;
  scope?: string;
  permission?: string;
}

// The server's table (libs/modelog_platform/authz.py): a role is a grant on every project.
const ROLE_PERM: Record<string, Perm> = { viewer: "READ", member: "EDIT", admin: "ADMIN" };
const IMPLIED: Record<Perm, Perm[]> = {
  READ: ["READ"],
  EDIT: ["READ", "EDIT"],
  APPROVE: ["READ", "APPROVE"],
  MANAGE: ["READ", "EDIT", "APPROVE", "MANAGE"],
  ADMIN: ["READ", "EDIT", "APPROVE", "MANAGE", "ADMIN"],
};

/** What the caller holds on one model: its roles plus its grants on the model and on its project. */
export function permsOnModel(me: Me, grants: Grant[], model: string, project: string): Set<Perm> {
  const held = new Set<Perm>();
  const add = (p: Perm | undefined) => p && IMPLIED[p].forEach((q) => held.add(q));
  me.roles.forEach((r) => add(ROLE_PERM[r]));
  for (const g of grants) {
    const mine =
      (g.scopeKind === "model" && g.scope === model) || (g.scopeKind === "project" && g.scope === project);
    if (mine) add(g.permission as Perm);
  }
  return held;
}

/** Whether a request whose policy names `approverRole` may be decided by the caller (member: EDIT
 * holders, approver: APPROVE holders, admin: MANAGE holders). The server decides in the end: this
 * only keeps the page from offering what would surely be refused. */
export function mayDecide(
  me: Me,
  perms: Set<Perm>,
  request: { approverRole?: string; requestedBy?: string },
  allowSelfApproval: boolean,
): boolean {
  if (request.requestedBy === me.actor && !allowSelfApproval) return false;
  const needed: Perm = { member: "EDIT", approver: "APPROVE", admin: "MANAGE" }[request.approverRole || "member"] as Perm;
  return perms.has(needed ?? "MANAGE");
}
