/*
 * Renders column values the way Debezium's Vitess connector does, for the tail format
 * test: for each input line (query.Type name, column_type, decimals, column_length,
 * flags, "1" if the FIELD says ENUM/SET values are strings, hex of the raw value or
 * NULL; tab-separated) it resolves the column as the connector's FIELD handling does
 * (VitessType.resolve, VStreamOutputMessageDecoder's column editor), converts the raw
 * value with the connector's resolver and VitessValueConverter under the connector's
 * default settings, and prints {"c": value} as Kafka Connect's JsonConverter renders it
 * without schemas. A column the connector leaves out prints OMITTED; a failure prints
 * ERROR and the exception.
 *
 * Run in source-file mode: java -cp <connector classpath> ConverterValues.java cases.tsv
 */

import io.debezium.config.CommonConnectorConfig;
import io.debezium.connector.vitess.VitessConnectorConfig;
import io.debezium.connector.vitess.VitessType;
import io.debezium.connector.vitess.VitessValueConverter;
import io.debezium.connector.vitess.connection.ReplicationMessageColumnValueResolver;
import io.debezium.connector.vitess.connection.VitessColumnValue;
import io.debezium.jdbc.JdbcValueConverters;
import io.debezium.jdbc.TemporalPrecisionMode;
import io.debezium.relational.Column;
import io.debezium.relational.ColumnEditor;
import io.vitess.proto.Query;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.ZoneOffset;
import java.util.HexFormat;
import java.util.Map;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.json.JsonConverter;

public class ConverterValues {
    public static void main(String[] args) throws Exception {
        TemporalPrecisionMode mode = TemporalPrecisionMode.ADAPTIVE_TIME_MICROSECONDS;
        VitessValueConverter converter = new VitessValueConverter(
                JdbcValueConverters.DecimalMode.PRECISE, mode, ZoneOffset.UTC,
                CommonConnectorConfig.BinaryHandlingMode.BYTES, false,
                VitessConnectorConfig.BigIntUnsignedHandlingMode.STRING, false);
        JsonConverter json = new JsonConverter();
        json.configure(Map.of("schemas.enable", "false", "converter.type", "value"), false);
        for (String line : Files.readAllLines(Paths.get(args[0]), StandardCharsets.UTF_8)) {
            String[] p = line.split("\t", -1);
            Query.Field field = Query.Field.newBuilder()
                    .setName("c")
                    .setType(Query.Type.valueOf(p[0]))
                    .setColumnType(p[1])
                    .setDecimals(Integer.parseInt(p[2]))
                    .setColumnLength(Integer.parseInt(p[3]))
                    .setFlags(Integer.parseInt(p[4]))
                    .build();
            boolean strings = p[5].equals("1");
            byte[] raw = p[6].equals("NULL") ? null : HexFormat.of().parseHex(p[6]);
            try {
                VitessType type = VitessType.resolve(field, strings);
                ColumnEditor editor = Column.editor().name("c").type(type.getName())
                        .jdbcType(type.getJdbcId()).optional((field.getFlags() & 1) == 0);
                if (type.getPrecision().isPresent()) {
                    editor = editor.length(type.getPrecision().get());
                }
                if (type.isEnum()) {
                    editor = editor.enumValues(type.getEnumValues());
                }
                Column column = editor.create();
                SchemaBuilder builder = converter.schemaBuilder(column);
                if (builder == null) {
                    System.out.println("OMITTED");
                    continue;
                }
                if (column.isOptional()) {
                    builder.optional();
                }
                Schema struct = SchemaBuilder.struct().field("c", builder.build()).build();
                VitessType rowType = new VitessType(column.typeName(), column.jdbcType(), column.enumValues());
                Object value = ReplicationMessageColumnValueResolver.resolveValue(
                        rowType, new VitessColumnValue(raw), false, mode);
                Object converted = converter.converter(column, struct.field("c")).convert(value);
                byte[] out = json.fromConnectData("t", struct, new Struct(struct).put("c", converted));
                System.out.println(new String(out, StandardCharsets.UTF_8));
            }
            catch (Throwable t) {
                System.out.println("ERROR " + t.toString().replace("\n", " "));
            }
        }
    }
}
