// Loaded with `node --require`: HTTPS connections to api.qiwi.com go to the
// sandbox on 127.0.0.1:$QIWI_SANDBOX_PORT instead, without touching
// /etc/hosts.  The name stays api.qiwi.com for SNI and the certificate check,
// so the SDK's requests are verified against the sandbox's throwaway CA
// (NODE_EXTRA_CA_CERTS) exactly as they would be against QIWI's.
'use strict';

const dns = require('dns');
const https = require('https');

const QIWI_HOST = 'api.qiwi.com';
const LOOPBACK = '127.0.0.1';
const sandboxPort = Number(process.env.QIWI_SANDBOX_PORT);

if (!Number.isInteger(sandboxPort) || sandboxPort <= 0) {
    throw new Error('route-to-sandbox.js: set QIWI_SANDBOX_PORT to the sandbox\'s port');
}

// True when a host name is QIWI's API host
function isQiwi (hostname) {
    return typeof hostname === 'string' && hostname.toLowerCase().replace(/\.$/, '') === QIWI_HOST;
}

// dns.lookup that answers 127.0.0.1 for QIWI's host, so no query leaves the machine
const systemLookup = dns.lookup;
function lookup (hostname, options, callback) {
    if (typeof options === 'function') {
        callback = options;
        options = {};
    }
    if (!isQiwi(hostname)) {
        return systemLookup.call(dns, hostname, options, callback);
    }
    const all = typeof options === 'object' && options !== null && options.all;
    process.nextTick(() => {
        if (all) {
            callback(null, [{ address: LOOPBACK, family: 4 }]);
        } else {
            callback(null, LOOPBACK, 4);
        }
    });
}
dns.lookup = lookup;

// Every https.Agent (the global one and those a library makes) sends QIWI's
// host to the sandbox's port on the loopback address
const agentConnect = https.Agent.prototype.createConnection;
https.Agent.prototype.createConnection = function (options, callback) {
    if (isQiwi(options.host || options.hostname)) {
        options = Object.assign({}, options, {
            port: sandboxPort,
            lookup,
            servername: options.servername || QIWI_HOST
        });
    }
    return agentConnect.call(this, options, callback);
};
