import Foundation

/// Any JSON value, decoded with `JSONDecoder` (which, unlike `JSONSerialization`, keeps a leading U+FEFF in
/// strings). The pipeline components of a `tokenizer.json` (normalizer, pre-tokenizer, post-processor,
/// decoder) are read through it, so each can name the field it refuses.
indirect enum TokenizerJSONValue: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([TokenizerJSONValue])
    case object([String: TokenizerJSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([TokenizerJSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: TokenizerJSONValue].self)) }
    }

    subscript(key: String) -> TokenizerJSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    var int: Int? { if case .number(let d) = self, d == d.rounded(), abs(d) < 1e15 { return Int(d) }; return nil }
    var array: [TokenizerJSONValue]? { if case .array(let a) = self { return a }; return nil }
    var isNull: Bool { self == .null }
    /// The `type` field of a component.
    var type: String { self["type"]?.string ?? "?" }
}

/// Reads the fields of one pipeline component, failing with the component's path in the message.
struct ComponentReader {
    let value: TokenizerJSONValue
    /// Where the component sits, e.g. `pre_tokenizer.pretokenizers[0]`.
    let path: String
    let file: String

    func fail(_ reason: String) -> TokenizerFileError {
        TokenizerFileError(file: file, .unsupported, "\(path) (\(value.type)): \(reason)")
    }

    func field(_ reason: String) -> TokenizerFileError {
        TokenizerFileError(file: file, .field, "\(path) (\(value.type)): \(reason)")
    }

    func string(_ key: String, default fallback: String? = nil) throws -> String {
        if let s = value[key]?.string { return s }
        if let fallback, value[key] == nil || value[key]!.isNull { return fallback }
        throw field("'\(key)' is missing or not a string")
    }

    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let v = value[key], !v.isNull else { return fallback }
        guard let b = v.bool else { throw field("'\(key)' is not a boolean") }
        return b
    }

    func int(_ key: String, default fallback: Int) throws -> Int {
        guard let v = value[key], !v.isNull else { return fallback }
        guard let i = v.int else { throw field("'\(key)' is not an integer") }
        return i
    }

    /// A `pattern` field: `{"String": "…"}` or `{"Regex": "…"}`.
    func pattern(_ key: String = "pattern") throws -> SplitPattern.Source {
        guard let p = value[key] else { throw field("'\(key)' is missing") }
        if let s = p["String"]?.string { return .literal(s) }
        if let r = p["Regex"]?.string { return .regex(r) }
        throw field("'\(key)' is neither {\"String\": …} nor {\"Regex\": …}")
    }

    func children(_ key: String) throws -> [ComponentReader] {
        guard let list = value[key]?.array else { throw field("'\(key)' is missing or not a list") }
        return list.enumerated().map { ComponentReader(value: $1, path: "\(path).\(key)[\($0)]", file: file) }
    }
}
