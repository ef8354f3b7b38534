import Foundation
import Yams

/// One YAML value with its dotted key and origin: reads it as the type a key wants, or throws a
/// `ConfigError` naming the key, the value and what was expected.
///
/// Scalars follow YAML 1.2 where Yams (YAML 1.1) would surprise: `0100` is a hundred, not octal. Quoted
/// scalars are always text, so `steps: "100"` is a type error.
public struct ConfigValue {
    public let key: String
    public let node: Node
    public let origin: ConfigOrigin

    public init(key: String, node: Node, origin: ConfigOrigin) { self.key = key; self.node = node; self.origin = origin }

    public var isNull: Bool {
        if case .scalar = node { return node.tagName == .null }
        return false
    }

    /// The value as a message shows it: text in quotes, numbers and booleans as written.
    public var shown: String {
        switch node {
        case .scalar(let scalar):
            switch node.tagName {
            case .null: return "null"
            case .int, .float, .bool: return scalar.string
            default: return "\"\(scalar.string)\""
            }
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }

    public func typeError(_ expected: String) -> ConfigError {
        ConfigError(.type, source: origin.source, line: origin.line, key: key, "expected \(expected), got \(shown)")
    }

    public func int(_ rule: IntRule) throws -> Int {
        guard case .scalar(let scalar) = node, node.tagName == .int, let value = Self.integer(scalar),
              rule.accepts(value) else { throw typeError(rule.expected) }
        return value
    }

    public static let seedType = "an integer in 0...\(UInt64.max)"

    public func seed() throws -> UInt64 {
        let expected = Self.seedType
        guard case .scalar(let scalar) = node, node.tagName == .int else { throw typeError(expected) }
        let text = scalar.string
        guard !text.contains("_"), let value = Self.isDecimal(text) ? UInt64(text) : UInt64.construct(from: scalar) else { throw typeError(expected) }
        return value
    }

    /// A finite number within `rule`; integers are numbers too (`alpha: 16`).
    public func number<T: BinaryFloatingPoint & LosslessStringConvertible>(_ rule: NumberRule) throws -> T {
        guard case .scalar(let scalar) = node else { throw typeError(rule.expected) }
        let value: T?
        switch node.tagName {
        case .int: value = Self.integer(scalar).map { T($0) }
        // Parsed straight to T so that a Float written by `resolvedYAML` reads back bit for bit.
        case .float: value = scalar.string.contains("_") ? nil : T(scalar.string)
        default: value = nil
        }
        guard let value, value.isFinite, rule.accepts(value) else { throw typeError(rule.expected) }
        return value
    }

    /// YAML 1.2: true or false (any case, as the core schema has them); `yes`, `no`, `on`, `off` are
    /// YAML 1.1 booleans and text in 1.2, so they are refused rather than guessed.
    public func bool() throws -> Bool {
        guard case .scalar(let scalar) = node, node.tagName == .bool,
              ["true", "false"].contains(scalar.string.lowercased()), let value = Bool.construct(from: scalar) else {
            if case .scalar(let scalar) = node, node.tagName == .bool {
                throw ConfigError(.type, source: origin.source, line: origin.line, key: key,
                                  "expected true or false, got \(scalar.string) (a YAML 1.1 boolean; configs are read as YAML 1.2, where it is text)")
            }
            throw typeError("true or false")
        }
        return value
    }

    /// Any scalar but null, as written: `output: 2024` is the folder "2024".
    public func text(_ expected: String = "text") throws -> String {
        guard case .scalar(let scalar) = node, node.tagName != .null else { throw typeError(expected) }
        return scalar.string
    }

    /// A list of text; one scalar is a list of one.
    public func texts(_ expected: String) throws -> [String] {
        switch node {
        case .scalar: return [try text(expected)]
        case .sequence(let sequence):
            return try sequence.map { element in
                guard case .scalar(let scalar) = element, element.tagName != .null else { throw typeError(expected) }
                return scalar.string
            }
        case .mapping: throw typeError(expected)
        }
    }

    public static func isDecimal(_ text: String) -> Bool {
        let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        return !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// Decimal as written (YAML 1.2), else 0x… and 0o…; YAML 1.1's `1_000`, `0b…` and sexagesimal
    /// forms are not numbers in 1.2.
    public static func integer(_ scalar: Node.Scalar) -> Int? {
        let text = scalar.string
        if text.contains("_") || text.contains(":") || text.lowercased().hasPrefix("0b") { return nil }
        return isDecimal(text) ? Int(text) : Int.construct(from: scalar)
    }
}

extension Node {
    /// The resolved tag's name (`Tag.name` itself is internal to Yams).
    public var tagName: Tag.Name { Tag.Name(rawValue: tag.description) }
}

/// The integers a key accepts.
public struct IntRule: Sendable {
    public var min: Int
    public var max: Int? = nil
    public init(min: Int, max: Int? = nil) { self.min = min; self.max = max }

    public static let positive = IntRule(min: 1)
    public static let nonNegative = IntRule(min: 0)
    /// A model or batch dimension: positive, and small enough that products of a few cannot overflow
    /// (the memory estimate then says whether the run fits).
    public static let size = IntRule(min: 1, max: 1 << 24)

    public func accepts(_ value: Int) -> Bool { value >= min && value <= (max ?? .max) }
    public var expected: String { max.map { "an integer in \(min)...\($0)" } ?? "an integer ≥ \(min)" }
}

/// The numbers a key accepts.
public enum NumberRule {
    case positive, nonNegative, unitInterval

    public func accepts<T: BinaryFloatingPoint>(_ value: T) -> Bool {
        switch self {
        case .positive: value > 0
        case .nonNegative: value >= 0
        case .unitInterval: value >= 0 && value < 1
        }
    }

    public var expected: String {
        switch self {
        case .positive: "a number > 0"
        case .nonNegative: "a number ≥ 0"
        case .unitInterval: "a number in [0, 1)"
        }
    }
}
