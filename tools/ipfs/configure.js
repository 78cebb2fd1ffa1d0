#!/usr/bin/env node
// Make a js-ipfs repo a private, offline node whose RPC API listens on 127.0.0.1:<port>.
// Usage: node configure.js <repo>/config <port>
// No swarm addresses (a TCP swarm address stops the API from coming up), no bootstrap peers,
// no delegates, no routing, no MDNS / webRTCStar, no gateway: nothing leaves the machine.
'use strict'
const fs = require('fs')

const [file, port] = process.argv.slice(2)
if (!file || !/^\d+$/.test(port || '') || Number(port) < 1 || Number(port) > 65535) {
  console.error('usage: configure.js <repo>/config <port 1-65535>')
  process.exit(2)
}
const config = JSON.parse(fs.readFileSync(file, 'utf8'))
config.Addresses = {
  ...(config.Addresses || {}),
  Swarm: [], Announce: [], NoAnnounce: [], Delegates: [],
  API: `/ip4/127.0.0.1/tcp/${port}`, Gateway: '', RPC: ''
}
config.Bootstrap = []
config.Routing = { Type: 'none' }
config.Discovery = { MDNS: { Enabled: false, Interval: 10 }, webRTCStar: { Enabled: false } }
config.Pubsub = { ...(config.Pubsub || {}), Enabled: false }
fs.writeFileSync(file, JSON.stringify(config, null, 2))
