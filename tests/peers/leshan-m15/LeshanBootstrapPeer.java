/*
 * Eclipse Leshan's bootstrap server, started for the interop suite (tests/peers/leshan_bootstrap.py).
 *
 * Wiring only: every CoAP exchange, every encoding and the order of the bootstrap requests are
 * Leshan's (LeshanBootstrapServer, DefaultBootstrapSessionManager, BootstrapConfigStoreTaskProvider,
 * InMemoryBootstrapConfigStore). This class adds what a test needs around it:
 *
 *   java -cp leshan-m15.jar LeshanBootstrapPeer COAP_PORT COAPS_PORT HTTP_PORT [CREDENTIALS_DIR]
 *
 * (0: any free port; CREDENTIALS_DIR: the bootstrap server's own DTLS credentials, as for
 * LeshanServerPeer)
 *
 * prints "READY coap=P coaps=P http=P" once it listens on 127.0.0.1, then serves
 *
 *   PUT    /config/{endpoint}  {"config": <Leshan's BootstrapConfig as JSON>, "before": [...]}
 *   GET    /config/{endpoint}  DELETE /config/{endpoint}
 *   GET    /sessions?endpoint=E   what Leshan's BootstrapSessionListener reported, per session
 *   DELETE /sessions
 *
 * A session is {endpoint, identity ("unsecure" | "psk:ID" | "x509:CN"), pct, format, state ("started",
 * "finished", "failed" with a cause, or "unauthorized"), requests: [{op, path, code ("2.04"),
 * error, links (a Bootstrap-Discover answer as Leshan parsed it), values (a Bootstrap-Read answer
 * as Leshan decoded it), failure (the exception when there was no usable answer)}]}.
 *
 * "before" lists Bootstrap-Discover, -Read and -Delete requests ({"op": "discover"|"read"|
 * "delete", "path": "/1"}) that Leshan sends ahead of the ones its config store derives from the
 * config, for the interop cases that start with them (Leshan's own task provider never reads, and
 * discovers only to find the Bootstrap-Server account). A config whose Bootstrap-Server account
 * (bootstrapServer = true) is PSK makes Leshan require that PSK on CoAPS for the endpoint, the
 * way Leshan's demo derives its bootstrap security store; one that is X509 makes it require a
 * certificate of a trusted CA whose CN is the endpoint name.
 */

import static java.nio.charset.StandardCharsets.UTF_8;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.security.GeneralSecurityException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.eclipse.leshan.core.SecurityMode;
import org.eclipse.leshan.core.endpoint.Protocol;
import org.eclipse.leshan.core.request.BootstrapDeleteRequest;
import org.eclipse.leshan.core.request.BootstrapDiscoverRequest;
import org.eclipse.leshan.core.request.BootstrapDownlinkRequest;
import org.eclipse.leshan.core.request.BootstrapReadRequest;
import org.eclipse.leshan.core.request.BootstrapRequest;
import org.eclipse.leshan.core.peer.LwM2mPeer;
import org.eclipse.leshan.core.peer.OscoreIdentity;
import org.eclipse.leshan.core.response.BootstrapDiscoverResponse;
import org.eclipse.leshan.core.response.BootstrapReadResponse;
import org.eclipse.leshan.core.response.LwM2mResponse;
import org.eclipse.leshan.server.bootstrap.BootstrapConfig;
import org.eclipse.leshan.server.bootstrap.BootstrapConfigStoreTaskProvider;
import org.eclipse.leshan.server.bootstrap.BootstrapFailureCause;
import org.eclipse.leshan.server.bootstrap.BootstrapSession;
import org.eclipse.leshan.server.bootstrap.BootstrapSessionListener;
import org.eclipse.leshan.server.bootstrap.BootstrapTaskProvider;
import org.eclipse.leshan.server.bootstrap.InMemoryBootstrapConfigStore;
import org.eclipse.leshan.server.bootstrap.InvalidConfigurationException;
import org.eclipse.leshan.server.bootstrap.LeshanBootstrapServer;
import org.eclipse.leshan.server.bootstrap.LeshanBootstrapServerBuilder;
import org.eclipse.leshan.server.californium.bootstrap.endpoint.CaliforniumBootstrapServerEndpointsProvider;
import org.eclipse.leshan.server.californium.bootstrap.endpoint.coap.CoapBootstrapServerProtocolProvider;
import org.eclipse.leshan.server.californium.bootstrap.endpoint.coaps.CoapsBootstrapServerProtocolProvider;
import org.eclipse.leshan.server.security.BootstrapSecurityStore;
import org.eclipse.leshan.server.security.SecurityInfo;

public final class LeshanBootstrapPeer {
    private static final String HOST = PeerApi.HOST;
    private static final ObjectMapper JSON = PeerApi.JSON;

    private final InMemoryBootstrapConfigStore store = new InMemoryBootstrapConfigStore();
    /** Per endpoint, the "before" requests of its config, as the client put them. */
    private final Map<String, JsonNode> before = new ConcurrentHashMap<>();
    /** What the session listener saw, oldest first; guarded by the recorder. */
    private final List<ObjectNode> sessions = new ArrayList<>();
    private final Recorder recorder = new Recorder();

    public static void main(String[] args) throws Exception {
        if (args.length != 3 && args.length != 4) {
            System.err.println("usage: LeshanBootstrapPeer COAP_PORT COAPS_PORT HTTP_PORT [CREDENTIALS_DIR]");
            System.exit(2);
        }
        new LeshanBootstrapPeer().run(Integer.parseInt(args[0]), Integer.parseInt(args[1]),
                Integer.parseInt(args[2]), args.length == 4 ? new File(args[3]) : null);
    }

    private void run(int coapPort, int coapsPort, int httpPort, File credentials)
            throws IOException, GeneralSecurityException {
        CaliforniumBootstrapServerEndpointsProvider.Builder endpoints =
                new CaliforniumBootstrapServerEndpointsProvider.Builder(
                        new CoapBootstrapServerProtocolProvider(), new CoapsBootstrapServerProtocolProvider());
        endpoints.addEndpoint(new InetSocketAddress(HOST, coapPort), Protocol.COAP);
        endpoints.addEndpoint(new InetSocketAddress(HOST, coapsPort), Protocol.COAPS);
        LeshanBootstrapServerBuilder builder = new LeshanBootstrapServerBuilder();
        builder.setEndpointsProviders(endpoints.build());
        builder.setSecurityStore(new SecurityFromConfigs());
        if (credentials != null) {
            PeerApi.Credentials c = PeerApi.Credentials.read(credentials);
            builder.setPrivateKey(c.privateKey()).setPublicKey(c.publicKey())
                    .setCertificateChain(c.chain()).setTrustedCertificates(c.trusted());
        }
        builder.setTaskProvider(new BeforeThenConfig());
        LeshanBootstrapServer server = builder.build();
        server.addListener(recorder);
        server.start();
        Runtime.getRuntime().addShutdownHook(new Thread(server::destroy));

        HttpServer http = PeerApi.http(httpPort);
        http.createContext("/config/", this::config);
        http.createContext("/sessions", this::sessions);
        http.start();
        PeerApi.ready(server.getEndpoint(Protocol.COAP).getURI().getPort(),
                server.getEndpoint(Protocol.COAPS).getURI().getPort(), http);
    }

    // -- the HTTP API ----------------------------------------------------------------------------

    private void config(HttpExchange x) throws IOException {
        String endpoint = PeerApi.tail(x, "/config/");
        switch (x.getRequestMethod()) {
            case "PUT" -> {
                JsonNode body;
                BootstrapConfig config;
                try {
                    body = JSON.readTree(x.getRequestBody());
                    config = JSON.treeToValue(body.path("config"), BootstrapConfig.class);
                    store.add(endpoint, config);
                } catch (IOException | InvalidConfigurationException e) {
                    reply(x, 400, JSON.createObjectNode().put("error", e.getMessage()));
                    return;
                }
                before.put(endpoint, body.path("before").isArray() ? body.get("before") : JSON.createArrayNode());
                reply(x, 204, null);
            }
            case "GET" -> {
                BootstrapConfig config = store.getAll().get(endpoint);
                if (config == null) {
                    reply(x, 404, JSON.createObjectNode().put("error", "no config for " + endpoint));
                    return;
                }
                ObjectNode out = JSON.createObjectNode();
                out.set("config", JSON.valueToTree(config));
                out.set("before", before.getOrDefault(endpoint, JSON.createArrayNode()));
                reply(x, 200, out);
            }
            case "DELETE" -> {
                before.remove(endpoint);
                reply(x, store.remove(endpoint) == null ? 404 : 204, null);
            }
            default -> reply(x, 405, null);
        }
    }

    private void sessions(HttpExchange x) throws IOException {
        String endpoint = PeerApi.query(x).get("endpoint");
        switch (x.getRequestMethod()) {
            case "GET" -> {
                ArrayNode out = JSON.createArrayNode();
                synchronized (recorder) {
                    for (ObjectNode s : sessions)
                        if (endpoint == null || endpoint.equals(s.path("endpoint").asText()))
                            out.add(s.deepCopy());
                }
                reply(x, 200, out);
            }
            case "DELETE" -> {
                synchronized (recorder) {
                    sessions.clear();
                }
                reply(x, 204, null);
            }
            default -> reply(x, 405, null);
        }
    }

    private static void reply(HttpExchange x, int status, JsonNode body) throws IOException {
        PeerApi.reply(x, status, body);
    }

    // -- Leshan's session manager, fed by its config store ---------------------------------------

    /**
     * Leshan's BootstrapConfigStoreTaskProvider, preceded by the config's "before" requests in a
     * task of their own. Their responses are not the Bootstrap-Discover Leshan's provider may
     * have asked for (autoIdForSecurityObject), so it starts afresh after them.
     */
    private final class BeforeThenConfig implements BootstrapTaskProvider {
        private final BootstrapTaskProvider leshan = new BootstrapConfigStoreTaskProvider(store);
        private final Set<String> inBefore = ConcurrentHashMap.newKeySet();

        @Override
        public Tasks getTasks(BootstrapSession session, List<LwM2mResponse> previous) {
            JsonNode steps = before.get(session.getEndpoint());
            if (previous == null && steps != null && steps.size() > 0
                    && store.get(session) != null) {
                Tasks tasks = new Tasks();
                tasks.requestsToSend = new ArrayList<>();
                for (JsonNode step : steps)
                    tasks.requestsToSend.add(request(step.path("op").asText(), step.path("path").asText("/")));
                tasks.supportedObjects = Map.of(0, "1.1", 1, "1.1", 2, "1.0");
                tasks.last = false;
                inBefore.add(session.getId());
                return tasks;
            }
            return leshan.getTasks(session, inBefore.remove(session.getId()) ? null : previous);
        }

        private BootstrapDownlinkRequest<? extends LwM2mResponse> request(String op, String path) {
            return switch (op) {
                case "discover" -> new BootstrapDiscoverRequest(path);
                case "read" -> new BootstrapReadRequest(path);
                case "delete" -> new BootstrapDeleteRequest(path);
                default -> throw new IllegalArgumentException("before: unknown op " + op);
            };
        }
    }

    /** A raw public key from its SubjectPublicKeyInfo DER; a config's bad key fails the lookup. */
    private static java.security.PublicKey rawPublicKey(byte[] der) {
        try {
            return PeerApi.publicKey(der);
        } catch (GeneralSecurityException e) {
            throw new IllegalArgumentException("not a public key: " + e.getMessage(), e);
        }
    }

    /**
     * What the client must present on CoAPS, from each config's Bootstrap-Server account: its
     * PSK, its raw public key (RPK), or a certificate (X509).
     */
    private final class SecurityFromConfigs implements BootstrapSecurityStore {
        @Override
        public Iterator<SecurityInfo> getAllByEndpoint(String endpoint) {
            BootstrapConfig config = store.getAll().get(endpoint);
            List<SecurityInfo> infos = new ArrayList<>();
            if (config != null)
                for (BootstrapConfig.ServerSecurity s : config.security.values())
                    if (s.bootstrapServer && s.securityMode == SecurityMode.PSK)
                        infos.add(SecurityInfo.newPreSharedKeyInfo(
                                endpoint, new String(s.publicKeyOrId, UTF_8), s.secretKey));
                    else if (s.bootstrapServer && s.securityMode == SecurityMode.X509)
                        infos.add(SecurityInfo.newX509CertInfo(endpoint));
                    else if (s.bootstrapServer && s.securityMode == SecurityMode.RPK)
                        infos.add(SecurityInfo.newRawPublicKeyInfo(endpoint, rawPublicKey(s.publicKeyOrId)));
            return infos.iterator();
        }

        @Override
        public SecurityInfo getByIdentity(String identity) {
            for (String endpoint : store.getAll().keySet())
                for (Iterator<SecurityInfo> it = getAllByEndpoint(endpoint); it.hasNext();) {
                    SecurityInfo info = it.next();
                    if (identity.equals(info.getPskIdentity()))
                        return info;
                }
            return null;
        }

        @Override
        public SecurityInfo getByOscoreIdentity(OscoreIdentity identity) {
            return null;
        }
    }

    // -- what Leshan reported --------------------------------------------------------------------

    /** Leshan calls it from its CoAP threads, the HTTP API reads it: every access holds its lock. */
    private final class Recorder implements BootstrapSessionListener {
        /** The record of each live session, by Leshan's session ID. */
        private final Map<String, ObjectNode> live = new HashMap<>();

        private ObjectNode open(String endpoint, LwM2mPeer peer, String state) {
            ObjectNode s = JSON.createObjectNode();
            s.put("endpoint", endpoint);
            s.put("identity", PeerApi.identity(peer));
            s.put("state", state);
            s.putArray("requests");
            sessions.add(s);
            return s;
        }

        private ObjectNode of(BootstrapSession session) {
            return live.computeIfAbsent(session.getId(), id -> {
                ObjectNode s = open(session.getEndpoint(), session.getClientTransportData(), "started");
                BootstrapRequest request = session.getBootstrapRequest();
                if (request.getPreferredContentFormat() != null)
                    s.put("pct", request.getPreferredContentFormat().getCode());
                if (session.getContentFormat() != null)
                    s.put("format", session.getContentFormat().getCode());
                return s;
            });
        }

        private ObjectNode last(BootstrapSession session) {
            ArrayNode requests = (ArrayNode) of(session).get("requests");
            return (ObjectNode) requests.get(requests.size() - 1);
        }

        @Override
        public void sessionInitiated(BootstrapRequest request, LwM2mPeer client) {}

        @Override
        public synchronized void unAuthorized(BootstrapRequest request, LwM2mPeer client) {
            open(request.getEndpointName(), client, "unauthorized");
        }

        @Override
        public synchronized void authorized(BootstrapSession session) {
            of(session);
        }

        @Override
        public void noConfig(BootstrapSession session) {} // then failed(NO_BOOTSTRAP_CONFIG)

        @Override
        public synchronized void sendRequest(BootstrapSession session,
                BootstrapDownlinkRequest<? extends LwM2mResponse> request) {
            ObjectNode r = ((ArrayNode) of(session).get("requests")).addObject();
            r.put("op", request.getClass().getSimpleName().replace("Bootstrap", "")
                    .replace("Request", "").toLowerCase());
            r.put("path", request.getPath() == null ? "/" : request.getPath().toString()); // Finish: none
        }

        @Override
        public synchronized void onResponseSuccess(BootstrapSession session,
                BootstrapDownlinkRequest<? extends LwM2mResponse> request, LwM2mResponse response) {
            answered(last(session), request, response);
        }

        @Override
        public synchronized void onResponseError(BootstrapSession session,
                BootstrapDownlinkRequest<? extends LwM2mResponse> request, LwM2mResponse response) {
            answered(last(session), request, response);
        }

        @Override
        public synchronized void onRequestFailure(BootstrapSession session,
                BootstrapDownlinkRequest<? extends LwM2mResponse> request, Throwable cause) {
            last(session).put("failure", String.valueOf(cause));
        }

        @Override
        public synchronized void end(BootstrapSession session) {
            of(session).put("state", "finished");
            live.remove(session.getId());
        }

        @Override
        public synchronized void failed(BootstrapSession session, BootstrapFailureCause cause) {
            of(session).put("state", "failed").put("cause", cause.name());
            live.remove(session.getId());
        }

        /** The response's CoAP code ("2.04"), its diagnostic, and what Leshan decoded of it. */
        private void answered(ObjectNode r, BootstrapDownlinkRequest<?> request, LwM2mResponse response) {
            r.put("code", PeerApi.code(response.getCode()));
            if (response.getErrorMessage() != null)
                r.put("error", response.getErrorMessage());
            if (response instanceof BootstrapDiscoverResponse d && d.getObjectLinks() != null)
                r.set("links", PeerApi.links(d.getObjectLinks()));
            if (response instanceof BootstrapReadResponse rd && rd.getContent() != null)
                r.set("values", PeerApi.values(request.getPath(), rd.getContent()));
        }
    }
}
