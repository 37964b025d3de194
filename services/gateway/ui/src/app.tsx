import { useEffect, useState } from "preact/hooks";
import { Link, Redirect, Route, Switch, useLocation } from "wouter-preact";
import { currentSession, signOut, whenSignedOut, type Me } from "./api";
import { SessionContext } from "./session";
import { SignIn } from "./pages/signin";
import { Experiments } from "./pages/experiments";
import { Runs } from "./pages/runs";
import { Compare } from "./pages/compare";
import { ArtifactPage, Artifacts } from "./pages/artifact";
import { RunPage } from "./pages/run";
import { Models } from "./pages/models";
import { ModelPage } from "./pages/model";
import { Audit } from "./pages/audit";
import { DatasetPage, Datasets } from "./pages/datasets";
import { MonitorPage, Monitors } from "./pages/monitors";
import { NotFound } from "./components/common";

type State = { kind: "loading" } | { kind: "out"; reason?: string } | { kind: "in"; me: Me };

export function App() {
  const [state, setState] = useState<State>({ kind: "loading" });

  useEffect(() => {
    whenSignedOut(() => setState({ kind: "out", reason: "Your session has ended: sign in again." }));
    currentSession()
      .then((me) => setState(me ? { kind: "in", me } : { kind: "out" }))
      .catch((err: Error) => setState({ kind: "out", reason: err.message }));
  }, []);

  if (state.kind === "loading") return <div class="boot">Loading…</div>;
  if (state.kind === "out") return <SignIn reason={state.reason} onSignedIn={(me) => setState({ kind: "in", me })} />;

  const leave = async () => {
    await signOut();
    setState({ kind: "out", reason: "Signed out." });
  };
  return (
    <SessionContext.Provider value={state.me}>
      <Shell me={state.me} onSignOut={leave}>
        <Switch>
          <Route path="/">
            <Redirect to="/experiments" replace />
          </Route>
          <Route path="/experiments" component={Experiments} />
          <Route path="/experiments/:id">{(p: { id: string }) => <Runs key={p.id} experimentId={p.id} />}</Route>
          <Route path="/runs/:id">{(p: { id: string }) => <RunPage key={p.id} runId={p.id} />}</Route>
          <Route path="/compare" component={Compare} />
          <Route path="/artifacts" component={Artifacts} />
          <Route path="/artifacts/:name">{(p: { name: string }) => <ArtifactPage key={p.name} name={decodeURIComponent(p.name)} />}</Route>
          <Route path="/models" component={Models} />
          <Route path="/models/:name">{(p: { name: string }) => <ModelPage key={p.name} name={decodeURIComponent(p.name)} />}</Route>
          <Route path="/datasets" component={Datasets} />
          <Route path="/datasets/:name">{(p: { name: string }) => <DatasetPage key={p.name} name={decodeURIComponent(p.name)} />}</Route>
          <Route path="/monitors" component={Monitors} />
          <Route path="/monitors/:name">{(p: { name: string }) => <MonitorPage key={p.name} name={decodeURIComponent(p.name)} />}</Route>
          <Route path="/audit" component={Audit} />
          <Route component={NotFound} />
        </Switch>
      </Shell>
    </SessionContext.Provider>
  );
}

function Shell(props: { me: Me; onSignOut: () => void; children: preact.ComponentChildren }) {
  const [location] = useLocation();
  const tab = (href: string, label: string) => (
    <Link href={href} className={location.startsWith(href) ? "tab active" : "tab"}>
      {label}
    </Link>
  );
  const roles = props.me.roles.length ? props.me.roles.join(", ") : "no role";
  return (
    <div class="shell">
      <header class="topbar">
        <Link href="/experiments" className="brand">
          <span class="logo" aria-hidden="true" />
          Modelog
        </Link>
        <nav aria-label="Main">
          {tab("/experiments", "Experiments")}
          {tab("/datasets", "Datasets")}
          {tab("/artifacts", "Artifacts")}
          {tab("/models", "Models")}
          {tab("/monitors", "Monitors")}
          {tab("/audit", "Audit log")}
        </nav>
        <div class="me">
          <span class="who" title={`signed in as ${props.me.actor} (${roles})`} data-testid="whoami">
            <span class="avatar" aria-hidden="true">
              {props.me.actor.slice(0, 1).toUpperCase()}
            </span>
            <span class="actor">{props.me.actor}</span>
            <span class="roles">{roles}</span>
          </span>
          <button type="button" class="btn ghost" onClick={props.onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main class="content">{props.children}</main>
    </div>
  );
}
