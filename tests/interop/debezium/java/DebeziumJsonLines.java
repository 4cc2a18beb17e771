import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import io.debezium.embedded.Connect;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.Reader;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;

/**
 * Runs one Debezium embedded engine and writes what it produces as JSON lines.
 *
 * <p>Usage: {@code DebeziumJsonLines <properties> <output.jsonl> <stop-file> <max-seconds>}.
 *
 * <p>Every change record becomes one line {@code {"type":"record","topic":...,"key":...,
 * "value":...,"partition":{...},"offset":{...}}}: key and value as Kafka Connect's
 * JsonConverter renders them (properties starting with {@code converter.} are passed to it
 * without the prefix; schemas are off unless {@code converter.schemas.enable=true}), partition
 * and offset are the record's source partition and source offset, the position the engine
 * stores. Engine life-cycle events become lines of type {@code task_started}, {@code
 * task_stopped} and {@code completed} (with success, message and the error's stack trace).
 *
 * <p>The engine is closed when the stop file appears, on SIGTERM/SIGINT, when the parent
 * process exits, or after max-seconds; closing commits the offsets of the records already
 * handed over. The line {@code
 * {"type":"exit"}} is written last, so a reader knows the file is complete.
 */
public final class DebeziumJsonLines {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String CONVERTER_PREFIX = "converter.";

    private final BufferedWriter out;

    private DebeziumJsonLines(BufferedWriter out) {
        this.out = out;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: DebeziumJsonLines <properties> <output> <stop-file> <max-seconds>");
            System.exit(2);
        }
        Properties props = new Properties();
        try (Reader reader = Files.newBufferedReader(Path.of(args[0]), StandardCharsets.UTF_8)) {
            props.load(reader);
        }
        Path stopFile = Path.of(args[2]);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[3]));

        Map<String, Object> converterConfig = new HashMap<>();
        converterConfig.put("schemas.enable", "false");
        for (String name : props.stringPropertyNames()) {
            if (name.startsWith(CONVERTER_PREFIX)) {
                converterConfig.put(name.substring(CONVERTER_PREFIX.length()), props.getProperty(name));
            }
        }
        JsonConverter keys = new JsonConverter();
        keys.configure(converterConfig, true);
        JsonConverter values = new JsonConverter();
        values.configure(converterConfig, false);

        BufferedWriter writer = Files.newBufferedWriter(
                Path.of(args[1]), StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        DebeziumJsonLines lines = new DebeziumJsonLines(writer);

        DebeziumEngine<RecordChangeEvent<SourceRecord>> engine = DebeziumEngine
                .create(ChangeEventFormat.of(Connect.class))
                .using(props)
                .using(new DebeziumEngine.ConnectorCallback() {
                    @Override
                    public void taskStarted() {
                        lines.status("task_started");
                    }

                    @Override
                    public void taskStopped() {
                        lines.status("task_stopped");
                    }
                })
                .using((success, message, error) -> lines.completed(success, message, error))
                .notifying(event -> lines.record(keys, values, event.record()))
                .build();

        ExecutorService executor = Executors.newSingleThreadExecutor();
        executor.execute(engine);
        // A shutdown hook closes the engine on SIGTERM/SIGINT as well.
        Thread hook = new Thread(() -> closeQuietly(engine));
        Runtime.getRuntime().addShutdownHook(hook);
        executor.shutdown();
        // The process that started this one; if it dies (a killed test run), stop too
        // rather than stream on, unwatched, until max-seconds.
        ProcessHandle parent = ProcessHandle.current().parent().orElse(null);
        while (!executor.awaitTermination(100, TimeUnit.MILLISECONDS)) {
            if (Files.exists(stopFile) || System.nanoTime() > deadline) {
                break;
            }
            if (parent != null && !parent.isAlive()) {
                break;
            }
        }
        closeQuietly(engine);
        // Bounded: an engine that does not stop in time is abandoned with the JVM.
        executor.awaitTermination(30, TimeUnit.SECONDS);
        lines.status("exit");
        writer.close();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException alreadyShuttingDown) {
            // SIGTERM arrived: the hook closes the engine and the JVM exits after it.
        }
        System.exit(0);
    }

    private static void closeQuietly(DebeziumEngine<?> engine) {
        try {
            engine.close();
        } catch (IOException | RuntimeException e) {
            e.printStackTrace();
        }
    }

    private synchronized void write(ObjectNode node) {
        try {
            out.write(JSON.writeValueAsString(node));
            out.write('\n');
            out.flush();
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    private void status(String type) {
        ObjectNode node = JSON.createObjectNode();
        node.put("type", type);
        write(node);
    }

    private void completed(boolean success, String message, Throwable error) {
        ObjectNode node = JSON.createObjectNode();
        node.put("type", "completed");
        node.put("success", success);
        node.put("message", message);
        if (error != null) {
            StringWriter trace = new StringWriter();
            error.printStackTrace(new PrintWriter(trace));
            node.put("error", trace.toString());
        }
        write(node);
    }

    private void record(JsonConverter keys, JsonConverter values, SourceRecord record) {
        ObjectNode node = JSON.createObjectNode();
        node.put("type", "record");
        node.put("topic", record.topic());
        node.set("key", convert(keys, record.topic(), record.keySchema(), record.key()));
        node.set("value", convert(values, record.topic(), record.valueSchema(), record.value()));
        node.set("partition", JSON.valueToTree(record.sourcePartition()));
        node.set("offset", JSON.valueToTree(record.sourceOffset()));
        write(node);
    }

    private static JsonNode convert(
            JsonConverter converter, String topic, org.apache.kafka.connect.data.Schema schema, Object value) {
        if (value == null) {
            return JSON.nullNode();
        }
        byte[] bytes = converter.fromConnectData(topic, schema, value);
        try {
            return JSON.readTree(bytes);
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }
}
