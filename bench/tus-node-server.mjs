// @tus/server with its file store on Node: a peer of benchmark P7 (benches/tus/mod.rs).
// Arguments: NODE_MODULES PORT DIR. bench/run installs the packages outside the repository;
// ES modules ignore NODE_PATH, so they are imported from the given node_modules by path.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [modules, port, directory] = process.argv.slice(2)
const load = (entry) => import(pathToFileURL(join(modules, entry)).href)
const { Server } = await load('@tus/server/dist/index.js')
const { FileStore } = await load('@tus/file-store/dist/index.js')

const server = new Server({ path: '/files', datastore: new FileStore({ directory }) })
server.listen({ host: '127.0.0.1', port: Number(port) })
