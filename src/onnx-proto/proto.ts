/**
 * ONNX protobuf codec. The schema below is the subset of onnx/onnx.proto (IR version 10) that a model
 * file of an MLP-like network uses, with the field numbers of the official schema, so files written
 * here are read by every ONNX runtime and files exported by PyTorch decode without loss of the fields
 * we rewrite (graph, nodes, attributes, initializers, functions, metadata).
 * https://github.com/onnx/onnx/blob/main/onnx/onnx.proto
 */
import protobuf from 'protobufjs';

const ONNX_PROTO = `
syntax = "proto2";
package onnx;

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5; SPARSE_TENSOR = 11;
    TYPE_PROTO = 13; FLOATS = 6; INTS = 7; STRINGS = 8; TENSORS = 9; GRAPHS = 10;
    SPARSE_TENSORS = 12; TYPE_PROTOS = 14;
  }
  optional string name = 1;
  optional string ref_attr_name = 21;
  optional string doc_string = 13;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  optional SparseTensorProto sparse_tensor = 22;
  optional TypeProto tp = 14;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  repeated SparseTensorProto sparse_tensors = 23;
  repeated TypeProto type_protos = 15;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
  repeated StringStringEntryProto metadata_props = 4;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  optional string overload = 8;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
  repeated StringStringEntryProto metadata_props = 9;
}

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message TensorAnnotation {
  optional string tensor_name = 1;
  repeated StringStringEntryProto quant_parameter_tensor_names = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  repeated SparseTensorProto sparse_initializer = 15;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
  repeated TensorAnnotation quantization_annotation = 14;
  repeated StringStringEntryProto metadata_props = 16;
}

message TensorProto {
  message Segment { optional int64 begin = 1; optional int64 end = 2; }
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  optional Segment segment = 3;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional string doc_string = 12;
  optional bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  optional int32 data_location = 14;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
  repeated StringStringEntryProto metadata_props = 16;
}

message SparseTensorProto {
  optional TensorProto values = 1;
  optional TensorProto indices = 2;
  repeated int64 dims = 3;
}

message TensorShapeProto {
  message Dimension {
    oneof value { int64 dim_value = 1; string dim_param = 2; }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor { optional int32 elem_type = 1; optional TensorShapeProto shape = 2; }
  message Sequence { optional TypeProto elem_type = 1; }
  message Map { optional int32 key_type = 1; optional TypeProto value_type = 2; }
  message Optional { optional TypeProto elem_type = 1; }
  message SparseTensor { optional int32 elem_type = 1; optional TensorShapeProto shape = 2; }
  oneof value {
    Tensor tensor_type = 1;
    Sequence sequence_type = 4;
    Map map_type = 5;
    Optional optional_type = 9;
    SparseTensor sparse_tensor_type = 8;
  }
  optional string denotation = 6;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}

message FunctionProto {
  optional string name = 1;
  repeated string input = 4;
  repeated string output = 5;
  repeated string attribute = 6;
  repeated AttributeProto attribute_proto = 11;
  repeated NodeProto node = 7;
  optional string doc_string = 8;
  repeated OperatorSetIdProto opset_import = 9;
  optional string domain = 10;
  optional string overload = 13;
  repeated ValueInfoProto value_info = 12;
  repeated StringStringEntryProto metadata_props = 14;
}

message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
  repeated FunctionProto functions = 25;
}
`;

const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
const ModelType = root.lookupType('onnx.ModelProto');

/** ONNX TensorProto.DataType values used here. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
} as const;

export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** protobufjs decodes int64 as Long (long.js) or number; a structured clone of a Long is {low, high}. */
export type Int64 = number | { toNumber(): number } | { low: number; high: number; unsigned?: boolean };

export interface Dim {
  dim_value?: Int64;
  dim_param?: string;
}
export interface TypeProto {
  tensor_type?: { elem_type?: number; shape?: { dim?: Dim[] } };
  [k: string]: unknown;
}
export interface ValueInfo {
  name: string;
  type?: TypeProto;
  doc_string?: string;
}
export interface Tensor {
  name?: string;
  dims?: Int64[];
  data_type?: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int32_data?: number[];
  int64_data?: Int64[];
  double_data?: number[];
  data_location?: number;
  external_data?: { key: string; value: string }[];
}
export interface Attribute {
  name: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: Tensor;
  floats?: number[];
  ints?: Int64[];
  [k: string]: unknown;
}
export interface Node {
  input: string[];
  output: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute?: Attribute[];
  [k: string]: unknown;
}
export interface Graph {
  node: Node[];
  name?: string;
  initializer?: Tensor[];
  input: ValueInfo[];
  output: ValueInfo[];
  value_info?: ValueInfo[];
  [k: string]: unknown;
}
export interface Model {
  ir_version?: Int64;
  opset_import?: { domain?: string; version?: Int64 }[];
  producer_name?: string;
  producer_version?: string;
  doc_string?: string;
  graph?: Graph;
  metadata_props?: { key: string; value: string }[];
  functions?: unknown[];
  [k: string]: unknown;
}

export function toNumber(v: Int64 | undefined | null): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  if ('toNumber' in v) return v.toNumber();
  return v.unsigned ? (v.high >>> 0) * 4294967296 + (v.low >>> 0) : v.high * 4294967296 + (v.low >>> 0);
}

/**
 * Decode an ONNX model file. Throws a plain Error with a readable message when the bytes are not a
 * protobuf ModelProto (truncated, random or empty input).
 */
export function decodeModel(bytes: Uint8Array): Model {
  if (bytes.length === 0) throw new Error('file is empty');
  let msg: protobuf.Message;
  try {
    msg = ModelType.decode(bytes);
  } catch (err) {
    throw new Error(`not an ONNX model (protobuf decode failed: ${(err as Error).message})`);
  }
  const model = msg as unknown as Model;
  if (!model.graph || !Array.isArray(model.graph.node)) {
    throw new Error('not an ONNX model (no graph)');
  }
  return model;
}

/** Encode a model object (as built by the exporter or returned by decodeModel) to bytes. */
export function encodeModel(model: Model): Uint8Array {
  const err = ModelType.verify(model);
  if (err) throw new Error(`invalid ONNX model object: ${err}`);
  return ModelType.encode(ModelType.fromObject(model)).finish();
}

/** Little-endian float32 bytes of a Float32Array (ONNX raw_data layout). */
export function floatRaw(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

/** Read a tensor's values as float64 numbers (FLOAT, DOUBLE, INT32, INT64, BOOL; raw or typed fields). */
export function tensorValues(t: Tensor): number[] {
  const type = t.data_type ?? 0;
  const raw = t.raw_data;
  if (t.data_location === 1 || (t.external_data && t.external_data.length > 0)) {
    throw new Error(`tensor ${t.name ?? '?'} uses external data, which is not supported`);
  }
  if (raw && raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out: number[] = [];
    switch (type) {
      case DataType.FLOAT:
        for (let i = 0; i + 4 <= raw.length; i += 4) out.push(view.getFloat32(i, true));
        return out;
      case DataType.DOUBLE:
        for (let i = 0; i + 8 <= raw.length; i += 8) out.push(view.getFloat64(i, true));
        return out;
      case DataType.INT32:
        for (let i = 0; i + 4 <= raw.length; i += 4) out.push(view.getInt32(i, true));
        return out;
      case DataType.INT64:
        for (let i = 0; i + 8 <= raw.length; i += 8) out.push(Number(view.getBigInt64(i, true)));
        return out;
      case DataType.BOOL:
      case DataType.UINT8:
        return Array.from(raw);
      default:
        throw new Error(`tensor ${t.name ?? '?'} has unsupported data type ${type}`);
    }
  }
  if (t.float_data?.length) return t.float_data.slice();
  if (t.double_data?.length) return t.double_data.slice();
  if (t.int64_data?.length) return t.int64_data.map(toNumber);
  if (t.int32_data?.length) return t.int32_data.slice();
  return [];
}
