#!/usr/bin/env node
/*
 * Test peer for the bridged suite: the lwm2m-node-lib LwM2M server, driven over stdin/stdout.
 *
 * The suite needs a LwM2M server that nobody on the project wrote, so that the client engine is
 * checked against someone else's reading of the specification. This program starts the
 * lwm2m-node-lib server on 127.0.0.1 and turns it into a line-delimited JSON peer:
 *
 *   stdout, one JSON object per line (never anything else; the library's log goes to stderr):
 *     {"event":"ready","port":5683}
 *     {"event":"registration","endpoint":"ep1","id":1,"lifetime":60,"version":"1.0",
 *      "binding":"U","payload":"</1/0>,</3/0>","address":"127.0.0.1","port":40000,
 *      "location":"/rd/1"}
 *     {"event":"update","endpoint":"ep1","id":1,"lifetime":60,"payload":"","address":...}
 *     {"event":"unregistration","endpoint":"ep1","id":1,"reason":"deregister"|"expired"}
 *     {"event":"notification","endpoint":"ep1","path":"/3/0/13","value":"1700000000"}
 *     {"id":1,"ok":true,"value":...}            answer to a command
 *     {"id":1,"ok":false,"error":"..."}         failed command (the library's error name/code)
 *
 *   stdin, one JSON command per line, each with a caller-chosen "id":
 *     {"id":1,"op":"read","endpoint":"ep1","path":"/3/0/0","accept":"text/plain"}
 *     {"id":2,"op":"write","endpoint":"ep1","path":"/1/0/1","value":"120","format":"text/plain"}
 *     {"id":3,"op":"execute","endpoint":"ep1","path":"/1/0/8","value":"0='a'"}  (value optional)
 *     {"id":4,"op":"observe","endpoint":"ep1","path":"/3/0/13"}  value = first notification
 *     {"id":5,"op":"cancel","endpoint":"ep1","path":"/3/0/13"}
 *     {"id":6,"op":"discover","endpoint":"ep1","path":"/3/0"}  value = link-format text
 *     {"id":7,"op":"writeAttributes","endpoint":"ep1","path":"/3/0/13","attributes":{"pmin":1}}
 *     {"id":8,"op":"listClients"}  value = [{"endpoint":..,"id":..,"lifetime":..,...}]
 *   Closing stdin (or SIGTERM) stops the server and exits with status 0.
 *
 * Usage: node server.js <udp-port>   (0 picks a free port; the ready event tells which)
 *
 * What the library imposes (read from its source, version 1.4.0):
 * - read, write, execute and observe address resources only (/o/i/r); discover takes /o, /o/i or
 *   /o/i/r. Values come back as UTF-8 text, so binary formats (TLV, CBOR) arrive mangled.
 * - The default write format is the pre-standard "lightweightm2m/text" (1541); this peer makes
 *   text/plain (0) the default instead and registers the OMA formats by name for "accept"/"format".
 * - Every lwm2m version and binding is accepted (no 4.12 for unknown versions); the object list is
 *   passed through unparsed. Update handlers see only the lifetime and payload, not b/sms/Q.
 * - No Block1 on incoming requests: a Register split in blocks is answered 2.01 at once and keeps
 *   only the first block of the object list.
 * - The Register answer carries ONE Location-Path option "rd/<id>" (slash inside); Update and
 *   De-register work whether the client sends it back as one segment or as "rd", "<id>".
 * - Cancel only forgets the observation locally: no GET with Observe=1, no RST.
 * - Lifetime expiry is checked every second against the time of the last Register/Update.
 * - Requests to the client leave from the server's own port: the library sends them to its own
 *   CoAP server with a Proxy-Uri, and the server forwards them.
 * Two node-coap transport bugs are worked around below (acknowledgementRelay,
 * acceptFirstNotification); without them CON notifications stall and a first notification with
 * Observe 0 is lost. Neither changes how the library reads LwM2M.
 */
'use strict';

const path = require('path');
const readline = require('readline');

const libDir = path.dirname(require.resolve('lwm2m-node-lib/package.json'));
// The library must see the same 'coap' module instance as this program, so resolve it from there.
const coapDir = path.dirname(require.resolve('coap/package.json', { paths: [libDir] }));
const coap = require(coapDir);
const logger = require(require.resolve('logops', { paths: [libDir] }));
const lwm2m = require('lwm2m-node-lib').server;

const HOST = '127.0.0.1';
const LIFETIME_CHECK_MS = 1000;

// OMA content formats by name, so commands can ask for them (node-coap knows formats by name only).
const FORMATS = [
    { name: 'text/plain', value: 0 },
    { name: 'application/link-format', value: 40 },
    { name: 'application/octet-stream', value: 42 },
    { name: 'application/senml+json', value: 110 },
    { name: 'application/senml+cbor', value: 112 },
    { name: 'lightweightm2m/text', value: 1541 },
    { name: 'application/vnd.oma.lwm2m+tlv', value: 11542 },
    { name: 'application/vnd.oma.lwm2m+json', value: 11543 },
    { name: 'application/vnd.oma.lwm2m+cbor', value: 11544 },
];

function emit(message) {
    process.stdout.write(JSON.stringify(message) + '\n');
}

/*
 * Adapt every CoAP server the library creates:
 * - it calls listen(port, callback) without an address, which binds every interface, while the
 *   suite must stay on the loopback interface;
 * - its requests to a client travel through a node-coap forwarding loop (library -> own server
 *   with Proxy-Uri -> client) that relays the client's responses back but drops the library's
 *   empty ACK/RST to them, so a client that answers with CON messages (separate responses, CON
 *   notifications) would never be acknowledged and would stall its notifications on
 *   retransmissions. Relay those ACK/RST messages to the client that sent the CON message.
 */
function adaptServers() {
    const createServer = coap.createServer;
    coap.createServer = function (...args) {
        const server = createServer.apply(this, args);
        const listen = server.listen;
        server.listen = (port, done) => listen.call(server, port, HOST, done);
        server._middlewares.splice(1, 0, acknowledgementRelay(server));
        return server;
    };
}

/* A node-coap middleware (runs right after parsing) that relays ACK/RST as described above. */
function acknowledgementRelay(server) {
    const awaitingAck = new Map(); // message ID of a relayed CON message -> its sender
    return (request, next) => {
        const packet = request.packet;
        const sender = awaitingAck.get(packet.messageId);
        const fromElsewhere = sender &&
            (sender.address !== request.rsinfo.address || sender.port !== request.rsinfo.port);
        if (packet.code === '0.00' && (packet.ack || packet.reset) && fromElsewhere) {
            awaitingAck.delete(packet.messageId);
            server._sock.send(request.raw, 0, request.raw.length, sender.port, sender.address);
            request.proxy = 'relayed'; // node-coap's later middlewares skip proxied messages
        } else if (packet.confirmable && packet.code[0] !== '0' &&
                   server._proxiedRequests[packet.token.toString('hex')]) {
            awaitingAck.set(packet.messageId, request.rsinfo);
        }
        next(null);
    };
}

/*
 * node-coap only passes on a notification whose Observe number is greater than the last one and
 * starts counting at 0, so a first response carrying Observe: 0 (aiocoap's choice, and valid per
 * RFC 7641) was dropped and the observe command only answered at the next change. Accept the
 * first response of every observation whatever its number.
 */
function acceptFirstNotification() {
    const ObserveReadStream = require(path.join(coapDir, 'lib', 'observe_read_stream'));
    const append = ObserveReadStream.prototype.append;
    ObserveReadStream.prototype.append = function (packet) {
        if (!this._firstSeen) {
            this._firstSeen = true;
            this._lastId = -1;
        }
        return append.call(this, packet);
    };
}

/* Split "/3/0/1" into ["3", "0", "1"]; null if it is not 1 to 3 numeric segments. */
function splitPath(text) {
    const parts = String(text || '').split('/').filter((part) => part !== '');
    if (parts.length < 1 || parts.length > 3 || !parts.every((part) => /^\d+$/.test(part))) {
        return null;
    }
    return parts;
}

function describeError(error) {
    if (!error) {
        return 'unknown error';
    }
    const code = error.code ? ` ${error.code}` : '';
    return `${error.name || 'Error'}${code}: ${error.message || ''}`.trim();
}

function describeDevice(device) {
    return {
        endpoint: device.name,
        id: device.id,
        lifetime: device.lifetime === undefined ? null : Number(device.lifetime),
        address: device.address,
        port: device.port,
        location: `/rd/${device.id}`,
    };
}

/*
 * The library reads config.defaultAcceptFormat / config.writeFormat when it builds a request.
 * With the in-memory registry that happens synchronously inside read()/write(), so swapping the
 * value around the call gives each command its own format without touching other commands.
 */
function withConfig(config, key, value, call) {
    if (value === undefined) {
        call();
        return;
    }
    const previous = config[key];
    config[key] = value;
    try {
        call();
    } finally {
        config[key] = previous;
    }
}

function makeCommands(config) {
    function device(endpoint, callback) {
        lwm2m.getDevice(endpoint, (error, found) => {
            if (error) {
                callback(new Error(`no registered client with endpoint ${JSON.stringify(endpoint)}`));
            } else {
                callback(null, found);
            }
        });
    }

    /* Resolve endpoint + resource path, then call body(device, [o, i, r]). */
    function onResource(command, done, body) {
        const parts = splitPath(command.path);
        if (!parts || parts.length !== 3) {
            done(new Error(`${command.op} needs a resource path /o/i/r, got ${command.path}`));
            return;
        }
        device(command.endpoint, (error, found) => (error ? done(error) : body(found, parts)));
    }

    return {
        read(command, done) {
            onResource(command, done, (found, [o, i, r]) =>
                withConfig(config, 'defaultAcceptFormat', command.accept, () =>
                    lwm2m.read(found.id, o, i, r, done)));
        },
        write(command, done) {
            onResource(command, done, (found, [o, i, r]) =>
                withConfig(config, 'writeFormat', command.format, () =>
                    lwm2m.write(found.id, o, i, r, String(command.value), done)));
        },
        execute(command, done) {
            const value = command.value === undefined ? undefined : String(command.value);
            onResource(command, done, (found, [o, i, r]) =>
                lwm2m.execute(found.id, o, i, r, value, done));
        },
        observe(command, done) {
            onResource(command, done, (found, [o, i, r]) => {
                const notify = (value) => emit({
                    event: 'notification', endpoint: command.endpoint, path: `/${o}/${i}/${r}`, value,
                });
                withConfig(config, 'defaultAcceptFormat', command.accept, () =>
                    lwm2m.observe(found.id, o, i, r, notify, done));
            });
        },
        cancel(command, done) {
            onResource(command, done, (found, [o, i, r]) => {
                // The library throws on an unknown observation instead of calling back.
                try {
                    lwm2m.cancelObserver(found.id, o, i, r, () => done(null, null));
                } catch (error) {
                    done(new Error(`no observation of ${command.path} on ${command.endpoint}`));
                }
            });
        },
        discover(command, done) {
            const parts = splitPath(command.path);
            if (!parts) {
                done(new Error(`discover needs /o, /o/i or /o/i/r, got ${command.path}`));
                return;
            }
            device(command.endpoint, (error, found) =>
                (error ? done(error) : lwm2m.discover(found.id, ...parts, done)));
        },
        writeAttributes(command, done) {
            onResource(command, done, (found, [o, i, r]) =>
                lwm2m.writeAttributes(found.id, o, i, r, command.attributes || {}, done));
        },
        listClients(command, done) {
            lwm2m.listDevices((error, devices) =>
                done(error, devices && devices.map(describeDevice)));
        },
    };
}

function serveCommands(commands, stop) {
    const input = readline.createInterface({ input: process.stdin, terminal: false });
    input.on('line', (line) => {
        if (line.trim() === '') {
            return;
        }
        let command;
        try {
            command = JSON.parse(line);
        } catch (error) {
            emit({ id: null, ok: false, error: `not JSON: ${line}` });
            return;
        }
        const handler = Object.prototype.hasOwnProperty.call(commands, command.op)
            ? commands[command.op] : null;
        if (!handler) {
            emit({ id: command.id, ok: false, error: `unknown op ${JSON.stringify(command.op)}` });
            return;
        }
        let answered = false;
        const done = (error, value) => {
            if (answered) {
                return;
            }
            answered = true;
            if (error) {
                emit({ id: command.id, ok: false, error: describeError(error) });
            } else {
                emit({ id: command.id, ok: true, value: value === undefined ? null : value });
            }
        };
        try {
            handler(command, done);
        } catch (error) {
            done(error);
        }
    });
    input.on('close', stop);
}

function setHandlers(serverInfo) {
    lwm2m.setHandler(serverInfo, 'registration', (endpoint, lifetime, version, binding, payload, cb) => {
        lwm2m.getDevice(endpoint, (error, device) => {
            emit({
                event: 'registration',
                endpoint,
                id: device ? device.id : null,
                lifetime: lifetime === undefined ? null : Number(lifetime),
                version: version === undefined ? null : version,
                binding: binding === undefined ? null : binding,
                payload,
                address: device ? device.address : null,
                port: device ? device.port : null,
                location: device ? `/rd/${device.id}` : null,
            });
            cb();
        });
    });
    lwm2m.setHandler(serverInfo, 'updateRegistration', (device, payload, cb) => {
        emit(Object.assign({ event: 'update', payload }, describeDevice(device)));
        cb();
    });
    const unregistered = (reason) => (device, cb) => {
        emit({ event: 'unregistration', endpoint: device.name, id: device.id, reason });
        cb();
    };
    lwm2m.setHandler(serverInfo, 'unregistration', unregistered('deregister'));
    // setHandler('unregistration') restarts the lifetime check with an undefined interval (the
    // library reads it from the wrong object), which makes it spin every millisecond; restart it
    // with a sane interval and a handler that tells expiry apart from a De-register.
    lwm2m.getRegistry().checkLifetime(LIFETIME_CHECK_MS, unregistered('expired'));
}

function main() {
    const port = Number(process.argv[2]);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
        process.stderr.write('usage: node server.js <udp-port>\n');
        process.exit(2);
    }
    logger.setStream(process.stderr);
    adaptServers();
    acceptFirstNotification();

    const config = {
        port,
        serverProtocol: 'udp4',
        ipProtocol: 'udp4',
        logLevel: process.env.LWM2M_LOG_LEVEL || 'FATAL',
        lifetimeCheckInterval: LIFETIME_CHECK_MS,
        // Registrations without a "type" query get this type; without it the library answers 4.04.
        defaultType: 'Device',
        formats: FORMATS,
        writeFormat: 'text/plain',
    };

    lwm2m.start(config, (error, serverInfo) => {
        if (error) {
            process.stderr.write(`cannot start the LwM2M server: ${describeError(error)}\n`);
            process.exit(1);
        }
        // With port 0 the library knows only "0"; its own requests go to config.port.
        config.port = serverInfo.server._sock.address().port;
        setHandlers(serverInfo);

        let stopping = false;
        const stop = () => {
            if (stopping) {
                return;
            }
            stopping = true;
            lwm2m.stop(serverInfo, () => process.exit(0));
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
        serveCommands(makeCommands(config), stop);
        emit({ event: 'ready', port: config.port });
    });
}

main();
