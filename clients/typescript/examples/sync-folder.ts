// An app's first minute, with the typed client: bind this install to a WeChat user through a QR
// code, classify a folder's photos (asking lookup first, so a photo classified before, by any
// app, is never uploaded again) and read the balance. Each step prints one JSON line.
//
//   npm run build
//   XINTU_API_BASE_URL=https://api.aifuture.net.cn node dist/examples/sync-folder.js <client-id> <folder>
import { readdir, readFile } from "node:fs/promises";
import { extname, join } from "node:path";

import { type components, createXintuClient, expectData, sha256Hex } from "../src/index.js";

type Classification = components["schemas"]["ClassificationOut"];

/** The formats the gateway classifies. */
const PHOTO_EXTENSIONS = new Set([".jpg", ".jpeg", ".png", ".webp", ".gif"]);
/** Most digests in one lookup. */
const LOOKUP_MAX = 500;

function emit(event: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ event, ...fields }));
}

async function main(): Promise<void> {
  const [clientId, folder] = process.argv.slice(2);
  if (clientId === undefined || folder === undefined) {
    console.error("usage: sync-folder <client-id> <folder>");
    process.exit(2);
  }
  const api = createXintuClient({
    baseUrl: process.env.XINTU_API_BASE_URL ?? "http://127.0.0.1:8080",
  });

  // 1. A QR code for the user to scan. Its token acts for the user once the scan is done; keep
  //    it (an app's keychain) for the life of the install.
  const qrcode = expectData(
    await api.POST("/api/v1/auth/wechat/qrcode", { body: { client_id: clientId } }),
  );
  api.setClientToken(qrcode.client_token);
  emit("qrcode", {
    ticket: qrcode.ticket,
    qrcode_url: qrcode.qrcode_url,
    expires_at: qrcode.expires_at,
  });

  // 2. Long polls: each answers as soon as the scan is processed, or after 25 s as "pending".
  for (;;) {
    const binding = expectData(
      await api.GET("/api/v1/auth/wechat/binding", {
        params: { query: { client_id: clientId, wait: 25 } },
      }),
    );
    if (binding.status === "completed") {
      emit("bound", { openid: binding.openid });
      break;
    }
    if (binding.status === "expired") {
      throw new Error("the QR code expired before it was scanned: run again for a new one");
    }
  }

  // 3. The folder's photos and their SHA-256 digests.
  const names = (await readdir(folder))
    .filter((name) => PHOTO_EXTENSIONS.has(extname(name).toLowerCase()))
    .sort();
  const photos = await Promise.all(
    names.map(async (name) => {
      const bytes = await readFile(join(folder, name));
      return { name, bytes, sha256: await sha256Hex(bytes) };
    }),
  );

  // 4. Lookup first: it never runs a model and never costs credits.
  const known = new Map<string, Classification>();
  for (let start = 0; start < photos.length; start += LOOKUP_MAX) {
    const digests = photos.slice(start, start + LOOKUP_MAX).map((photo) => photo.sha256);
    const answer = expectData(await api.POST("/api/v1/photos/lookup", { body: { sha256: digests } }));
    for (const result of answer.results) {
      if (result.classification) {
        known.set(result.sha256, result.classification);
      }
    }
  }
  emit("lookup", { photos: photos.length, found: known.size });

  // 5. Upload only the misses.
  for (const photo of photos) {
    const stored = known.get(photo.sha256);
    if (stored) {
      emit("photo", { file: photo.name, from: "lookup", category: stored.category, label: stored.label });
      continue;
    }
    const classified = expectData(
      await api.POST("/api/v1/photos/classify", {
        body: { image: photo.name, mode: "auto" },
        bodySerializer: () => {
          const form = new FormData();
          form.append("image", new Blob([photo.bytes]), photo.name);
          form.append("mode", "auto");
          return form;
        },
      }),
    );
    known.set(photo.sha256, classified);
    emit("photo", {
      file: photo.name,
      from: "upload",
      category: classified.category,
      label: classified.label,
      source: classified.source,
      credits_charged: classified.credits_charged,
    });
  }

  // 6. The balance, as the member page shows it.
  const account = expectData(await api.GET("/api/v1/account"));
  emit("account", {
    available_credits: account.available_credits,
    remaining_credits: account.remaining_credits,
    is_member: account.is_member,
    member_expire_at: account.member_expire_at ?? null,
  });
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
