// Files the page makes for the person (an export, a character card).

/** Hands `blob` to the browser as a download named `name`. */
export function saveAs(blob: Blob, name: string): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  // Long enough for the browser to have read it.
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}
