/*
 * Eclipse Leshan's LwM2M server 2.0.0-M15, started for the interop suite (tests/peers/leshan_m15.py).
 *
 * Wiring only: registration, DTLS (Californium 3's Scandium), the security check, the requests,
 * their encoding and the decoding of every answer and notification are Leshan's (LeshanServer with
 * its Californium CoAP and CoAPS endpoints, InMemorySecurityStore, VersionedModelProvider). This
 * class adds what a test needs around it:
 *
 *   java -cp leshan-m15.jar LeshanServerPeer COAP_PORT COAPS_PORT HTTP_PORT [MODELS_DIR [CREDENTIALS_DIR]]
 *
 * (-Dpeer.preferredBlockSize=256: Californium's PREFERRED_BLOCK_SIZE, the Block1 size its 2.31
 * Continue asks a client for, RFC 7959 late negotiation; 0: any free port; MODELS_DIR: DDF files added to Leshan's own models, "" for none;
 * CREDENTIALS_DIR: the server's own DTLS credentials for the certificate and raw public key
 * modes, written by the test at run time: server.key (PKCS#8 DER), server.pub (SubjectPublicKeyInfo
 * DER), chain.pem (the server's certificate chain, leaf first) and trust.pem (the CAs whose client
 * certificates Leshan accepts)) prints
 * "READY coap=P coaps=P http=P" once it listens on 127.0.0.1, then serves
 *
 *   PUT    /security/{endpoint}   {"identity": "...", "key": "<hex>"}: the endpoint's PSK,
 *                                  {"rpk": "<hex SubjectPublicKeyInfo DER>"}: its raw public key,
 *                                  {"x509": true}: a certificate whose CN is the endpoint name
 *   DELETE /security/{endpoint}
 *   GET    /clients                       the registrations Leshan holds now
 *   GET    /events?endpoint=E             what Leshan's listeners reported, oldest first
 *   POST   /clients/{endpoint}/read?path=/3/0/0&format=0          (format: a content format code)
 *   POST   /clients/{endpoint}/observe?path=/3/0/0&format=11542
 *   POST   /clients/{endpoint}/attributes?path=/1/0/7&pmin=0&pmax=1   Write-Attributes
 *   POST   /clients/{endpoint}/cancel?path=/3/0/0                Leshan's active cancel
 *   POST   /clients/{endpoint}/read-composite?format=112      body ["/3/0/0", "/3303/0/5700"]
 *   POST   /clients/{endpoint}/observe-composite?format=112   body: the same
 *   POST   /clients/{endpoint}/cancel-composite               body: the observation's paths
 *   POST   /clients/{endpoint}/write-composite?format=112     body {"/3/0/15": "Europe/Paris"}
 *
 * (the composite operations' format is both the request's and the answer's content format; a
 * value to write is typed by its JSON type: string, integer, float, boolean; a cancel is
 * Leshan's active one, the observation's request with Observe=1 and its token, after which
 * Leshan forgets the observation)
 *
 * A registration is {id, endpoint, identity ("psk:ID" | "rpk:<hex>" | "x509:CN" | "unsecure"), secure, lifetime, version,
 * binding, queue, links: [{url, attribute: value}]}. An event is {event: "registered" |
 * "updated" | "deregistered", endpoint, registration, (deregistered) expired} or {event:
 * "notification", endpoint, path (paths for a composite observation), code, values} or {event:
 * "observe-error", endpoint, path, error} or {event: "send", endpoint, values, series} (a Send
 * Leshan decoded: in values the records of every time merged, a later one replacing; in series
 * each time Leshan decoded, [seconds, nanoseconds] since the epoch or null, with its values, in
 * time order) or {event: "send-error",
 * endpoint, error}. A request's answer is {code ("2.05"), error, values
 * ({"/3/0/0": value}, what Leshan decoded)}, or {failure} when there was no answer (a timeout, a
 * refused or undecodable one; with the exception's causes).
 */

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.security.GeneralSecurityException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.eclipse.californium.core.config.CoapConfig;
import org.eclipse.leshan.core.endpoint.Protocol;
import org.eclipse.leshan.core.link.lwm2m.attributes.DefaultLwM2mAttributeParser;
import org.eclipse.leshan.core.link.lwm2m.attributes.LwM2mAttributeSet;
import org.eclipse.leshan.core.model.ObjectLoader;
import org.eclipse.leshan.core.model.ObjectModel;
import org.eclipse.leshan.core.node.LwM2mNode;
import org.eclipse.leshan.core.node.LwM2mPath;
import org.eclipse.leshan.core.node.TimestampedLwM2mNodes;
import org.eclipse.leshan.core.observation.CompositeObservation;
import org.eclipse.leshan.core.observation.Observation;
import org.eclipse.leshan.core.observation.SingleObservation;
import org.eclipse.leshan.core.request.CancelCompositeObservationRequest;
import org.eclipse.leshan.core.request.CancelObservationRequest;
import org.eclipse.leshan.core.request.ContentFormat;
import org.eclipse.leshan.core.request.DownlinkRequest;
import org.eclipse.leshan.core.request.ObserveCompositeRequest;
import org.eclipse.leshan.core.request.ObserveRequest;
import org.eclipse.leshan.core.request.ReadCompositeRequest;
import org.eclipse.leshan.core.request.ReadRequest;
import org.eclipse.leshan.core.request.SendRequest;
import org.eclipse.leshan.core.request.WriteAttributesRequest;
import org.eclipse.leshan.core.request.WriteCompositeRequest;
import org.eclipse.leshan.core.response.LwM2mResponse;
import org.eclipse.leshan.core.response.ObserveCompositeResponse;
import org.eclipse.leshan.core.response.ObserveResponse;
import org.eclipse.leshan.core.response.ReadCompositeResponse;
import org.eclipse.leshan.core.response.ReadResponse;
import org.eclipse.leshan.server.LeshanServer;
import org.eclipse.leshan.server.LeshanServerBuilder;
import org.eclipse.leshan.server.californium.endpoint.CaliforniumServerEndpointsProvider;
import org.eclipse.leshan.server.californium.endpoint.coap.CoapServerProtocolProvider;
import org.eclipse.leshan.server.californium.endpoint.coaps.CoapsServerProtocolProvider;
import org.eclipse.leshan.server.model.VersionedModelProvider;
import org.eclipse.leshan.server.observation.ObservationListener;
import org.eclipse.leshan.server.registration.Registration;
import org.eclipse.leshan.server.registration.RegistrationListener;
import org.eclipse.leshan.server.registration.RegistrationUpdate;
import org.eclipse.leshan.server.security.InMemorySecurityStore;
import org.eclipse.leshan.server.security.NonUniqueSecurityInfoException;
import org.eclipse.leshan.server.send.SendListener;

public final class LeshanServerPeer {
    /** How long a request waits for the client's answer: long, for a loaded 2-core machine. */
    private static final long REQUEST_TIMEOUT_MS = 20_000;
    /** A Write-Composite's body: {path: value}, each value as Jackson reads it. */
    private static final TypeReference<Map<String, Object>> PATH_VALUES = new TypeReference<>() {};

    private final InMemorySecurityStore security = new InMemorySecurityStore();
    /** What the listeners reported, oldest first; guarded by itself. */
    private final List<ObjectNode> events = new ArrayList<>();
    private LeshanServer server;

    public static void main(String[] args) throws Exception {
        if (args.length < 3 || args.length > 5) {
            System.err.println(
                    "usage: LeshanServerPeer COAP_PORT COAPS_PORT HTTP_PORT [MODELS_DIR [CREDENTIALS_DIR]]");
            System.exit(2);
        }
        new LeshanServerPeer().run(Integer.parseInt(args[0]), Integer.parseInt(args[1]),
                Integer.parseInt(args[2]), args.length >= 4 && !args[3].isEmpty() ? new File(args[3]) : null,
                args.length == 5 ? new File(args[4]) : null);
    }

    private void run(int coapPort, int coapsPort, int httpPort, File models, File credentials)
            throws IOException, GeneralSecurityException {
        CaliforniumServerEndpointsProvider.Builder endpoints = new CaliforniumServerEndpointsProvider.Builder(
                new CoapServerProtocolProvider(), new CoapsServerProtocolProvider());
        endpoints.addEndpoint(new InetSocketAddress(PeerApi.HOST, coapPort), Protocol.COAP);
        endpoints.addEndpoint(new InetSocketAddress(PeerApi.HOST, coapsPort), Protocol.COAPS);
        Integer blockSize = Integer.getInteger("peer.preferredBlockSize");
        if (blockSize != null)
            endpoints.setConfiguration(c -> c.set(CoapConfig.PREFERRED_BLOCK_SIZE, blockSize));
        List<ObjectModel> objects = new ArrayList<>(ObjectLoader.loadAllDefault());
        if (models != null)
            objects.addAll(ObjectLoader.loadObjectsFromDir(models, true));
        LeshanServerBuilder builder = new LeshanServerBuilder();
        builder.setEndpointsProviders(endpoints.build());
        builder.setSecurityStore(security);
        if (credentials != null) {
            PeerApi.Credentials c = PeerApi.Credentials.read(credentials);
            builder.setPrivateKey(c.privateKey()).setPublicKey(c.publicKey())
                    .setCertificateChain(c.chain()).setTrustedCertificates(c.trusted());
        }
        builder.setObjectModelProvider(new VersionedModelProvider(objects));
        server = builder.build();
        server.getRegistrationService().addListener(new Registrations());
        server.getObservationService().addListener(new Notifications());
        server.getSendService().addListener(new Sends());
        server.start();
        Runtime.getRuntime().addShutdownHook(new Thread(server::destroy));

        HttpServer http = PeerApi.http(httpPort);
        http.createContext("/security/", this::security);
        http.createContext("/clients", this::clients);
        http.createContext("/events", this::events);
        http.start();
        PeerApi.ready(server.getEndpoint(Protocol.COAP).getURI().getPort(),
                server.getEndpoint(Protocol.COAPS).getURI().getPort(), http);
    }

    // -- the HTTP API ----------------------------------------------------------------------------

    private void security(HttpExchange x) throws IOException {
        String endpoint = PeerApi.tail(x, "/security/");
        switch (x.getRequestMethod()) {
            case "PUT" -> {
                JsonNode body = PeerApi.JSON.readTree(x.getRequestBody());
                try {
                    security.add(PeerApi.securityInfo(endpoint, body));
                } catch (IllegalArgumentException | NonUniqueSecurityInfoException | GeneralSecurityException e) {
                    PeerApi.error(x, 400, String.valueOf(e));
                    return;
                }
                PeerApi.reply(x, 204, null);
            }
            case "DELETE" -> PeerApi.reply(x, security.remove(endpoint, true) == null ? 404 : 204, null);
            default -> PeerApi.reply(x, 405, null);
        }
    }

    private void events(HttpExchange x) throws IOException {
        String endpoint = PeerApi.query(x).get("endpoint");
        ArrayNode out = PeerApi.JSON.createArrayNode();
        synchronized (events) {
            for (ObjectNode e : events)
                if (endpoint == null || endpoint.equals(e.path("endpoint").asText()))
                    out.add(e.deepCopy());
        }
        PeerApi.reply(x, 200, out);
    }

    private void clients(HttpExchange x) throws IOException {
        String[] parts = x.getRequestURI().getRawPath().split("/"); // "", "clients", EP, operation
        if (parts.length == 2 && x.getRequestMethod().equals("GET")) {
            ArrayNode out = PeerApi.JSON.createArrayNode();
            for (Iterator<Registration> it = server.getRegistrationService().getAllRegistrations(); it.hasNext();)
                out.add(registration(it.next()));
            PeerApi.reply(x, 200, out);
            return;
        }
        if (parts.length != 4 || !x.getRequestMethod().equals("POST")) {
            PeerApi.reply(x, 405, null);
            return;
        }
        String endpoint = PeerApi.tail(x, "/clients/").split("/")[0];
        Registration registration = server.getRegistrationService().getByEndpoint(endpoint);
        if (registration == null) {
            PeerApi.error(x, 404, "not registered: " + endpoint);
            return;
        }
        Map<String, String> query = PeerApi.query(x);
        String path = query.remove("path");
        String format = query.remove("format");
        ContentFormat contentFormat = format == null ? null : ContentFormat.fromCode(Integer.parseInt(format));
        DownlinkRequest<? extends LwM2mResponse> request;
        try {
            request = switch (parts[3]) {
                case "read" -> new ReadRequest(contentFormat, path);
                case "observe" -> new ObserveRequest(contentFormat, path);
                case "attributes" -> new WriteAttributesRequest(path, new LwM2mAttributeSet(
                        new DefaultLwM2mAttributeParser().parseQueryParams(query.entrySet().stream()
                                .map(e -> e.getKey() + "=" + e.getValue()).toList())));
                case "read-composite" -> new ReadCompositeRequest(contentFormat, contentFormat, paths(x));
                case "observe-composite" -> new ObserveCompositeRequest(contentFormat, contentFormat,
                        paths(x).stream().map(LwM2mPath::new).toList());
                case "cancel" -> new CancelObservationRequest(
                        observation(registration, List.of(path), SingleObservation.class));
                case "cancel-composite" -> new CancelCompositeObservationRequest(
                        observation(registration, paths(x), CompositeObservation.class));
                case "write-composite" -> new WriteCompositeRequest(contentFormat,
                        PeerApi.JSON.convertValue(PeerApi.JSON.readTree(x.getRequestBody()), PATH_VALUES));
                default -> null;
            };
        } catch (RuntimeException | IOException
                | org.eclipse.leshan.core.link.attributes.InvalidAttributeException e) {
            PeerApi.error(x, 400, String.valueOf(e));
            return;
        }
        if (request == null) {
            PeerApi.error(x, 404, "no operation " + parts[3]);
            return;
        }
        ObjectNode out = PeerApi.JSON.createObjectNode();
        try {
            LwM2mResponse response = server.send(registration, request, REQUEST_TIMEOUT_MS);
            if (response == null)
                out.put("failure", "no answer within " + REQUEST_TIMEOUT_MS + " ms");
            else
                answered(out, path == null ? null : new LwM2mPath(path), response);
        } catch (RuntimeException | InterruptedException e) {
            out.put("failure", causes(e));
        }
        // The client was told; Leshan forgets the observation whatever it made of the answer.
        if (request instanceof CancelCompositeObservationRequest cancel)
            server.getObservationService().cancelObservation(cancel.getObservation());
        if (request instanceof CancelObservationRequest cancel)
            server.getObservationService().cancelObservation(cancel.getObservation());
        PeerApi.reply(x, 200, out);
    }

    /** A composite request's paths: the body, a JSON array of strings. */
    private static List<String> paths(HttpExchange x) throws IOException {
        List<String> paths = new ArrayList<>();
        PeerApi.JSON.readTree(x.getRequestBody()).forEach(p -> paths.add(p.asText()));
        return paths;
    }

    /** The registration's observation of ``kind`` (single or composite) of exactly ``paths``. */
    private <T extends Observation> T observation(Registration registration, List<String> paths, Class<T> kind) {
        List<LwM2mPath> wanted = paths.stream().map(LwM2mPath::new).toList();
        for (Observation o : server.getObservationService().getObservations(registration)) {
            List<LwM2mPath> observed = o instanceof CompositeObservation c ? c.getPaths()
                    : List.of(((SingleObservation) o).getPath());
            if (kind.isInstance(o) && observed.equals(wanted))
                return kind.cast(o);
        }
        throw new IllegalArgumentException("no " + kind.getSimpleName() + " of " + paths);
    }

    /** An exception and its causes, one a line: Leshan's decoding error says why in a cause. */
    private static String causes(Throwable e) {
        StringBuilder out = new StringBuilder(String.valueOf(e));
        for (Throwable c = e.getCause(); c != null; c = c.getCause())
            out.append("\ncaused by ").append(c);
        return out.toString();
    }

    /** A response's CoAP code, its diagnostic and what Leshan decoded of it. */
    private static void answered(ObjectNode out, LwM2mPath path, LwM2mResponse response) {
        out.put("code", PeerApi.code(response.getCode()));
        if (response.getErrorMessage() != null)
            out.put("error", response.getErrorMessage());
        if (response instanceof ReadResponse read && read.getContent() != null)
            out.set("values", PeerApi.values(path, read.getContent()));
        if (response instanceof ReadCompositeResponse read && read.getContent() != null) {
            ObjectNode values = PeerApi.JSON.createObjectNode();
            // Records of different times: getContent() has the latest time's only, with null
            // for the other paths (and so has getNodes(), which merges the times in no order).
            if (read instanceof ObserveCompositeResponse observed && observed.getTimestampedLwM2mNodes() != null) {
                TimestampedLwM2mNodes timed = observed.getTimestampedLwM2mNodes();
                timed.getTimestamps().stream().sorted(Comparator.nullsFirst(Comparator.naturalOrder()))
                        .forEach(t -> composite(values, timed.getNodesAt(t)));
            } else
                composite(values, read.getContent());
            out.set("values", values);
        }
    }

    /** The values of a composite answer's paths that it has (a later one replaces). */
    private static void composite(ObjectNode values, Map<LwM2mPath, LwM2mNode> content) {
        content.forEach((at, node) -> {
            if (node != null)
                values.setAll(PeerApi.values(at, node));
        });
    }

    private static ObjectNode registration(Registration r) {
        ObjectNode out = PeerApi.JSON.createObjectNode();
        out.put("id", r.getId());
        out.put("endpoint", r.getEndpoint());
        out.put("identity", PeerApi.identity(r.getClientTransportData()));
        out.put("secure", r.getClientTransportData().getIdentity().isSecure());
        out.put("lifetime", r.getLifeTimeInSec());
        out.put("version", r.getLwM2mVersion().toString());
        out.put("binding", r.getBindingMode().stream().map(Enum::name).reduce("", String::concat));
        out.put("queue", r.usesQueueMode());
        out.set("links", PeerApi.links(r.getObjectLinks()));
        return out;
    }

    // -- what Leshan reported --------------------------------------------------------------------

    private void record(ObjectNode event) {
        synchronized (events) {
            events.add(event);
        }
    }

    private ObjectNode event(String kind, Registration registration) {
        ObjectNode e = PeerApi.JSON.createObjectNode().put("event", kind).put("endpoint", registration.getEndpoint());
        e.set("registration", registration(registration));
        return e;
    }

    private final class Registrations implements RegistrationListener {
        @Override
        public void registered(Registration registration, Registration previous, Collection<Observation> observations) {
            record(event("registered", registration));
        }

        @Override
        public void updated(RegistrationUpdate update, Registration updated, Registration previous) {
            record(event("updated", updated));
        }

        @Override
        public void unregistered(Registration registration, Collection<Observation> observations, boolean expired,
                Registration newRegistration) {
            record(event("deregistered", registration).put("expired", expired));
        }
    }

    private final class Notifications implements ObservationListener {
        @Override
        public void newObservation(Observation observation, Registration registration) {}

        @Override
        public void cancelled(Observation observation) {}

        @Override
        public void onResponse(SingleObservation observation, Registration registration, ObserveResponse response) {
            ObjectNode e = PeerApi.JSON.createObjectNode().put("event", "notification")
                    .put("endpoint", registration.getEndpoint()).put("path", observation.getPath().toString());
            answered(e, observation.getPath(), response);
            record(e);
        }

        @Override
        public void onResponse(CompositeObservation observation, Registration registration,
                ObserveCompositeResponse response) {
            ObjectNode e = PeerApi.JSON.createObjectNode().put("event", "notification")
                    .put("endpoint", registration.getEndpoint());
            ArrayNode paths = e.putArray("paths");
            observation.getPaths().forEach(p -> paths.add(p.toString()));
            answered(e, null, response);
            record(e);
        }

        @Override
        public void onError(Observation observation, Registration registration, Exception error) {
            ObjectNode e = PeerApi.JSON.createObjectNode().put("event", "observe-error")
                    .put("endpoint", registration.getEndpoint()).put("error", String.valueOf(error));
            if (observation instanceof SingleObservation single)
                e.put("path", single.getPath().toString());
            record(e);
        }
    }

    private final class Sends implements SendListener {
        @Override
        public void dataReceived(Registration registration, TimestampedLwM2mNodes data, SendRequest request) {
            ObjectNode values = PeerApi.JSON.createObjectNode();
            ArrayNode series = PeerApi.JSON.createArrayNode();
            data.getTimestamps().stream().sorted(Comparator.nullsFirst(Comparator.naturalOrder()))
                    .forEach(t -> {
                        composite(values, data.getNodesAt(t));
                        ObjectNode at = series.addObject();
                        if (t == null)
                            at.putNull("time");
                        else
                            at.putArray("time").add(t.getEpochSecond()).add(t.getNano());
                        composite(at.putObject("values"), data.getNodesAt(t));
                    });
            ObjectNode e = PeerApi.JSON.createObjectNode().put("event", "send")
                    .put("endpoint", registration.getEndpoint());
            e.set("values", values);
            e.set("series", series);
            record(e);
        }

        @Override
        public void onError(Registration registration, String message, Exception error) {
            record(PeerApi.JSON.createObjectNode().put("event", "send-error")
                    .put("endpoint", registration.getEndpoint()).put("error", message + ": " + error));
        }
    }
}
