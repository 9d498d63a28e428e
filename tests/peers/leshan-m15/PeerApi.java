/*
 * What the two Leshan 2.0.0-M15 launchers (LeshanBootstrapPeer, LeshanServerPeer) share: their
 * HTTP API's plumbing and the JSON form of what Leshan decoded, so that both report a CoAP code,
 * an identity, a link and a decoded LwM2M node the same way (tests/peers/leshan_m15.py reads it).
 */

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.JsonDeserializer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.JsonSerializer;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.module.SimpleModule;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.ArrayList;
import java.util.List;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.Executors;
import org.eclipse.leshan.core.ResponseCode;
import org.eclipse.leshan.core.link.Link;
import org.eclipse.leshan.core.link.attributes.Attribute;
import org.eclipse.leshan.core.node.LwM2mNode;
import org.eclipse.leshan.core.node.LwM2mObject;
import org.eclipse.leshan.core.node.LwM2mObjectInstance;
import org.eclipse.leshan.core.node.LwM2mPath;
import org.eclipse.leshan.core.node.LwM2mResource;
import org.eclipse.leshan.core.node.LwM2mResourceInstance;
import org.eclipse.leshan.core.peer.LwM2mIdentity;
import org.eclipse.leshan.core.peer.LwM2mPeer;
import org.eclipse.leshan.core.peer.PskIdentity;
import org.eclipse.leshan.core.peer.RpkIdentity;
import org.eclipse.leshan.core.peer.X509Identity;
import org.eclipse.leshan.core.request.ContentFormat;
import org.eclipse.leshan.server.security.SecurityInfo;

final class PeerApi {
    static final String HOST = "127.0.0.1";
    static final ObjectMapper JSON = mapper();

    private PeerApi() {}

    /**
     * The HTTP API on 127.0.0.1: a thread per call, since a call may wait for the client's
     * answer to a request Leshan sent (and a notification must be recorded meanwhile).
     */
    static HttpServer http(int port) throws IOException {
        HttpServer http = HttpServer.create(new InetSocketAddress(HOST, port), 0);
        http.setExecutor(Executors.newCachedThreadPool());
        return http;
    }

    /** The line the Python driver waits for: every port, once everything listens. */
    static void ready(int coap, int coaps, HttpServer http) {
        System.out.printf("READY coap=%d coaps=%d http=%d%n", coap, coaps, http.getAddress().getPort());
        System.out.flush();
    }

    /** The URL-decoded path after ``prefix``. */
    static String tail(HttpExchange x, String prefix) {
        return URLDecoder.decode(x.getRequestURI().getRawPath().substring(prefix.length()), StandardCharsets.UTF_8);
    }

    /** The query's parameters (the last of a repeated name). */
    static Map<String, String> query(HttpExchange x) {
        Map<String, String> out = new HashMap<>();
        String raw = x.getRequestURI().getRawQuery();
        if (raw != null)
            for (String pair : raw.split("&")) {
                int eq = pair.indexOf('=');
                if (eq > 0)
                    out.put(URLDecoder.decode(pair.substring(0, eq), StandardCharsets.UTF_8),
                            URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8));
            }
        return out;
    }

    static void reply(HttpExchange x, int status, JsonNode body) throws IOException {
        byte[] bytes = body == null ? new byte[0] : JSON.writeValueAsBytes(body);
        x.getResponseHeaders().set("Content-Type", "application/json");
        x.sendResponseHeaders(status, bytes.length == 0 ? -1 : bytes.length);
        if (bytes.length > 0)
            x.getResponseBody().write(bytes);
        x.close();
    }

    static void error(HttpExchange x, int status, String message) throws IOException {
        reply(x, status, JSON.createObjectNode().put("error", message));
    }

    /** "2.05" for Leshan's CONTENT. */
    static String code(ResponseCode code) {
        return String.format("%d.%02d", code.getCode() / 100, code.getCode() % 100);
    }

    /**
     * How Leshan identified the peer: "psk:ID" for DTLS-PSK, "rpk:<hex SubjectPublicKeyInfo DER>"
     * for a raw public key, "x509:CN" for a certificate, "unsecure" for plain CoAP.
     */
    static String identity(LwM2mPeer peer) {
        LwM2mIdentity identity = peer.getIdentity();
        if (identity instanceof PskIdentity psk)
            return "psk:" + psk.getPskIdentity();
        if (identity instanceof RpkIdentity rpk)
            return "rpk:" + HexFormat.of().formatHex(rpk.getPublicKey().getEncoded());
        if (identity instanceof X509Identity x509)
            return "x509:" + x509.getX509CommonName();
        return identity.isSecure() ? "secure" : "unsecure";
    }

    /**
     * An endpoint's security info from a PUT /security/{endpoint} body: {"identity", "key" (hex)}
     * for a PSK, {"rpk": hex SubjectPublicKeyInfo DER} for a raw public key, {"x509": true} for a
     * certificate (Leshan then wants its CN to be the endpoint name).
     */
    static SecurityInfo securityInfo(String endpoint, JsonNode body) throws GeneralSecurityException {
        if (body.has("rpk"))
            return SecurityInfo.newRawPublicKeyInfo(endpoint, publicKey(HexFormat.of().parseHex(body.path("rpk").asText())));
        if (body.path("x509").asBoolean())
            return SecurityInfo.newX509CertInfo(endpoint);
        byte[] key = HexFormat.of().parseHex(body.path("key").asText());
        return SecurityInfo.newPreSharedKeyInfo(endpoint, body.path("identity").asText(), key);
    }

    /** An EC public key from its SubjectPublicKeyInfo DER. */
    static PublicKey publicKey(byte[] der) throws GeneralSecurityException {
        return KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(der));
    }

    /**
     * A server's own DTLS credentials, read from ``dir`` (see LeshanServerPeer's usage): its key
     * pair, for the raw public key mode, and its certificate chain and trusted CAs, for the
     * certificate mode. Both launchers' builders take them.
     */
    record Credentials(PrivateKey privateKey, PublicKey publicKey, X509Certificate[] chain, X509Certificate[] trusted) {
        static Credentials read(File dir) throws IOException, GeneralSecurityException {
            PrivateKey key = KeyFactory.getInstance("EC")
                    .generatePrivate(new PKCS8EncodedKeySpec(Files.readAllBytes(dir.toPath().resolve("server.key"))));
            return new Credentials(key, PeerApi.publicKey(Files.readAllBytes(dir.toPath().resolve("server.pub"))),
                    certificates(dir, "chain.pem").toArray(new X509Certificate[0]),
                    certificates(dir, "trust.pem").toArray(new X509Certificate[0]));
        }
    }

    private static List<X509Certificate> certificates(File dir, String name) throws IOException, GeneralSecurityException {
        List<X509Certificate> out = new ArrayList<>();
        try (InputStream in = Files.newInputStream(dir.toPath().resolve(name))) {
            for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in))
                out.add((X509Certificate) c);
        }
        return out;
    }

    /** Links as Leshan parsed them: {"url": "/3/0", attribute: value or null, ...}. */
    static ArrayNode links(Link[] links) {
        ArrayNode out = JSON.createArrayNode();
        for (Link link : links) {
            ObjectNode l = out.addObject().put("url", link.getUriReference());
            for (Attribute a : link.getAttributes())
                l.put(a.getName(), a.hasValue() ? String.valueOf(a.getValue()) : null);
        }
        return out;
    }

    /** A decoded LwM2M node found at ``at``, as {"/o/i/r": value, "/o/i/r/ri": value}. */
    static ObjectNode values(LwM2mPath at, LwM2mNode node) {
        ObjectNode out = JSON.createObjectNode();
        if (node instanceof LwM2mObject o)
            o.getInstances().values().forEach(i -> instance(out, "/" + o.getId() + "/" + i.getId(), i));
        else if (node instanceof LwM2mObjectInstance i)
            instance(out, "/" + at.getObjectId() + "/" + i.getId(), i);
        else if (node instanceof LwM2mResource r)
            resource(out, at.toObjectInstancePath() + "/" + r.getId(), r);
        else if (node instanceof LwM2mResourceInstance ri)
            out.set(at.toString(), JSON.valueToTree(plain(ri.getValue())));
        return out;
    }

    private static void instance(ObjectNode out, String path, LwM2mObjectInstance i) {
        i.getResources().values().forEach(r -> resource(out, path + "/" + r.getId(), r));
    }

    private static void resource(ObjectNode out, String path, LwM2mResource r) {
        if (r.isMultiInstances())
            r.getInstances().forEach((id, ri) -> out.set(path + "/" + id, JSON.valueToTree(plain(ri.getValue()))));
        else
            out.set(path, JSON.valueToTree(plain(r.getValue())));
    }

    /** A value as JSON can carry it: opaque as hex, a time or link as Leshan prints it. */
    private static Object plain(Object value) {
        if (value instanceof byte[] b)
            return HexFormat.of().formatHex(b);
        if (value instanceof Number || value instanceof Boolean || value instanceof String)
            return value;
        return String.valueOf(value);
    }

    /** Jackson over Leshan's BootstrapConfig (public fields); a content format is its code. */
    private static ObjectMapper mapper() {
        SimpleModule formats = new SimpleModule();
        formats.addSerializer(ContentFormat.class, new JsonSerializer<ContentFormat>() {
            @Override
            public void serialize(ContentFormat f, JsonGenerator g, SerializerProvider p) throws IOException {
                g.writeNumber(f.getCode());
            }
        });
        formats.addDeserializer(ContentFormat.class, new JsonDeserializer<ContentFormat>() {
            @Override
            public ContentFormat deserialize(JsonParser parser, DeserializationContext c) throws IOException {
                return ContentFormat.fromCode(parser.getIntValue());
            }
        });
        return new ObjectMapper().registerModule(formats)
                .setSerializationInclusion(JsonInclude.Include.NON_NULL);
    }
}
