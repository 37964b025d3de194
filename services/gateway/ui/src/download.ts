// Files the page makes (a signed audit bundle, a drift report) are handed to the browser as a blob
// URL behind a `download` link: saved as a file, never opened under the app's origin and CSP.

export function saveFile(name: string, parts: BlobPart[], type: string): void {
  const url = URL.createObjectURL(new Blob(parts, { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
  // the download has started from the click; the URL can go once the event loop moves on
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** proto3 JSON carries bytes as base64. */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
