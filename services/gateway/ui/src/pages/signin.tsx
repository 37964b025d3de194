import { useState } from "preact/hooks";
import { signIn, type Me } from "../api";

/** A token pasted once becomes an HttpOnly session cookie; the page never keeps it. */
export function SignIn(props: { reason?: string; onSignedIn: (me: Me) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      const me = await signIn(token);
      setToken("");
      props.onSignedIn(me);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="signin">
      <form class="card signin-card" onSubmit={submit} aria-labelledby="signin-title">
        <div class="brand big">
          <span class="logo" aria-hidden="true" />
          Modelog
        </div>
        <h1 id="signin-title">Sign in</h1>
        {props.reason && <p class="notice">{props.reason}</p>}
        <label for="token">Access token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          placeholder="mlg_…"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          aria-invalid={error ? "true" : undefined}
          aria-describedby={error ? "token-error" : "token-help"}
          autofocus
        />
        {error ? (
          <p id="token-error" class="field-error" role="alert">
            {error}
          </p>
        ) : (
          <p id="token-help" class="muted small">
            Paste it once: the browser keeps an HttpOnly session cookie for 12 hours, never the token. The
            admin token of <code>modelog up</code> is in <code>~/.modelog/admin-token</code>; make others
            with <code>modelog token create NAME --role viewer|member|admin</code>.
          </p>
        )}
        <button type="submit" class="btn primary wide" disabled={busy || !token.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
