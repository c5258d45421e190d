// Uploads one file with tus-js-client on Node (its Node HTTP stack, a file source and its
// file URL storage), as a user would: for Ferry's API tests (tests/api/tus_clients.rs).
// NODE_PATH names the node_modules holding tus-js-client (tests/clients/install puts it there).
//
// Argument: one JSON object {endpoint, token, file, storage, chunkSize?, parallel?, metadata?,
// stopAfter?, retryDelays?}. `stopAfter`: abort once that many bytes were sent (the next run
// resumes from the URL storage). Prints {"url", "file"} on success, {"stopped": n, "url"}.
'use strict'
const fs = require('fs')
const tus = require('tus-js-client')

const options = JSON.parse(process.argv[2])
let stopping = false
const upload = new tus.Upload(fs.createReadStream(options.file), {
  endpoint: options.endpoint,
  headers: { Authorization: `Bearer ${options.token}` },
  chunkSize: options.chunkSize || Infinity,
  parallelUploads: options.parallel || 1,
  metadata: options.metadata || {},
  urlStorage: new tus.FileUrlStorage(options.storage),
  storeFingerprintForResuming: true,
  // removing it on success runs after onSuccess and would be cut off by its exit, leaving
  // the storage's lock file behind for the next run
  removeFingerprintOnSuccess: false,
  retryDelays: options.retryDelays || [0, 500, 1000, 1000, 2000, 2000, 3000, 3000, 3000, 5000, 5000, 5000],
  onProgress(sent) {
    if (options.stopAfter && sent >= options.stopAfter && !stopping) {
      stopping = true
      upload.abort(false).then(() => {
        console.log(JSON.stringify({ stopped: sent, url: upload.url }))
        process.exit(0)
      })
    }
  },
  onError(error) {
    console.error(`upload failed: ${error}`)
    process.exit(1)
  },
  onSuccess({ lastResponse }) {
    // where the server filed it (Ferry-Location), as a browser page would read it
    console.log(JSON.stringify({ url: upload.url, file: lastResponse.getHeader('Ferry-Location') || null }))
    process.exit(0)
  },
})

upload.findPreviousUploads().then((previous) => {
  if (previous.length > 0) {
    upload.resumeFromPreviousUpload(previous[0])
  }
  upload.start()
})
