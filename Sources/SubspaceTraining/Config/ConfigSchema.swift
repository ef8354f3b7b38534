import Foundation
import Yams

/// One key of a config section: what it accepts, what it means, how to read it from YAML, check it and
/// write it back. The same rule serves loading (with the line to blame) and `validate()` (for configs
/// built in code), so the two cannot disagree.
struct ConfigField<Section> {
    let name: String
    /// What the key accepts, as messages say it: "an integer ≥ 1".
    let type: String
    let meaning: String
    /// Parses and range-checks the value, storing it in the section.
    let read: (inout Section, ConfigValue) throws -> Void
    /// Whether the section's value passes the key's own rule.
    let accepts: (Section) -> Bool
    /// The section's value as YAML (a flow scalar or list).
    let yaml: (Section) -> String
}

extension ConfigField {
    static func int(_ name: String, _ path: WritableKeyPath<Section, Int>, _ rule: IntRule, _ meaning: String) -> Self {
        Self(name: name, type: rule.expected, meaning: meaning,
             read: { $0[keyPath: path] = try $1.int(rule) },
             accepts: { rule.accepts($0[keyPath: path]) },
             yaml: { "\($0[keyPath: path])" })
    }

    static func optionalInt(_ name: String, _ path: WritableKeyPath<Section, Int?>, _ rule: IntRule, _ meaning: String) -> Self {
        let type = rule.expected + " or null"
        return Self(name: name, type: type, meaning: meaning,
                    read: { section, value in
                        if value.isNull { section[keyPath: path] = nil; return }
                        guard let number = try? value.int(rule) else { throw value.typeError(type) }
                        section[keyPath: path] = number
                    },
                    accepts: { $0[keyPath: path].map(rule.accepts) ?? true },
                    yaml: { $0[keyPath: path].map { "\($0)" } ?? "null" })
    }

    static func seed(_ name: String, _ path: WritableKeyPath<Section, UInt64>, _ meaning: String) -> Self {
        Self(name: name, type: ConfigValue.seedType, meaning: meaning,
             read: { $0[keyPath: path] = try $1.seed() },
             accepts: { _ in true },
             yaml: { "\($0[keyPath: path])" })
    }

    static func number<T: BinaryFloatingPoint & LosslessStringConvertible>(
        _ name: String, _ path: WritableKeyPath<Section, T>, _ rule: NumberRule, _ meaning: String
    ) -> Self {
        Self(name: name, type: rule.expected, meaning: meaning,
             read: { $0[keyPath: path] = try $1.number(rule) },
             accepts: { $0[keyPath: path].isFinite && rule.accepts($0[keyPath: path]) },
             yaml: { "\($0[keyPath: path])" })
    }

    static func optionalNumber<T: BinaryFloatingPoint & LosslessStringConvertible>(
        _ name: String, _ path: WritableKeyPath<Section, T?>, _ rule: NumberRule, _ meaning: String
    ) -> Self {
        let type = rule.expected + " or null"
        return Self(name: name, type: type, meaning: meaning,
                    read: { section, value in
                        if value.isNull { section[keyPath: path] = nil; return }
                        guard let number: T = try? value.number(rule) else { throw value.typeError(type) }
                        section[keyPath: path] = number
                    },
                    accepts: { $0[keyPath: path].map { $0.isFinite && rule.accepts($0) } ?? true },
                    yaml: { $0[keyPath: path].map { "\($0)" } ?? "null" })
    }

    static func bool(_ name: String, _ path: WritableKeyPath<Section, Bool>, _ meaning: String) -> Self {
        Self(name: name, type: "true or false", meaning: meaning,
             read: { $0[keyPath: path] = try $1.bool() },
             accepts: { _ in true },
             yaml: { "\($0[keyPath: path])" })
    }

    static func text(_ name: String, _ path: WritableKeyPath<Section, String>, _ meaning: String) -> Self {
        let type = "non-empty text"
        return Self(name: name, type: type, meaning: meaning,
                    read: { section, value in
                        let text = try value.text(type)
                        guard !text.isEmpty else { throw value.typeError(type) }
                        section[keyPath: path] = text
                    },
                    accepts: { !$0[keyPath: path].isEmpty },
                    yaml: { YAMLText.scalar($0[keyPath: path]) })
    }

    static func optionalText(_ name: String, _ path: WritableKeyPath<Section, String?>, _ meaning: String) -> Self {
        let type = "non-empty text or null"
        return Self(name: name, type: type, meaning: meaning,
                    read: { section, value in
                        if value.isNull { section[keyPath: path] = nil; return }
                        let text = try value.text(type)
                        guard !text.isEmpty else { throw value.typeError(type) }
                        section[keyPath: path] = text
                    },
                    accepts: { $0[keyPath: path] != "" },
                    yaml: { $0[keyPath: path].map(YAMLText.scalar) ?? "null" })
    }

    /// A list of text; `nonEmpty` lists need at least one element, and no element may be empty.
    static func texts(_ name: String, _ path: WritableKeyPath<Section, [String]>, nonEmpty: Bool, _ meaning: String) -> Self {
        let type = nonEmpty ? "a non-empty list of text" : "a list of text"
        func valid(_ list: [String]) -> Bool { !(nonEmpty && list.isEmpty) && !list.contains("") }
        return Self(name: name, type: type, meaning: meaning,
                    read: { section, value in
                        let list = try value.texts(type)
                        guard valid(list) else { throw value.typeError(type) }
                        section[keyPath: path] = list
                    },
                    accepts: { valid($0[keyPath: path]) },
                    yaml: { YAMLText.list($0[keyPath: path]) })
    }

    /// A non-empty list of non-empty text, or null.
    static func optionalTexts(_ name: String, _ path: WritableKeyPath<Section, [String]?>, _ meaning: String) -> Self {
        let type = "a non-empty list of text or null"
        func valid(_ list: [String]) -> Bool { !list.isEmpty && !list.contains("") }
        return Self(name: name, type: type, meaning: meaning,
                    read: { section, value in
                        if value.isNull { section[keyPath: path] = nil; return }
                        let list = try value.texts(type)
                        guard valid(list) else { throw value.typeError(type) }
                        section[keyPath: path] = list
                    },
                    accepts: { $0[keyPath: path].map(valid) ?? true },
                    yaml: { $0[keyPath: path].map(YAMLText.list) ?? "null" })
    }

    static func choice<E: RawRepresentable & Equatable>(
        _ name: String, _ path: WritableKeyPath<Section, E>, _ cases: [E], _ meaning: String
    ) -> Self where E.RawValue == String {
        let type = "one of " + cases.map(\.rawValue).joined(separator: ", ")
        return Self(name: name, type: type, meaning: meaning,
                    read: { section, value in
                        guard let choice = E(rawValue: try value.text(type)), cases.contains(choice) else {
                            throw value.typeError(type)
                        }
                        section[keyPath: path] = choice
                    },
                    accepts: { cases.contains($0[keyPath: path]) },
                    yaml: { YAMLText.scalar($0[keyPath: path].rawValue) })
    }
}

/// One section of the config, with the type of its fields erased so that all sections fit one list.
struct ConfigSection {
    struct Key {
        let name: String
        let type: String
        /// The default as YAML.
        let defaultValue: String
        let meaning: String
    }

    let name: String
    let meaning: String
    /// Whether the section may be absent (`lora`); the others fall back to their defaults.
    let isOptional: Bool
    let keys: [Key]
    /// Applies the section's values to `config`; nil entries is a null (or, for `lora`, absent) section.
    let decode: (inout TrainConfig, [ConfigValue]?) throws -> Void
    /// The keys whose values break their own rule, with the rule.
    let problems: (TrainConfig) -> [(key: String, expected: String, shown: String)]
    /// Every key with its value as YAML; nil for an absent optional section.
    let yaml: (TrainConfig) -> [(name: String, value: String)]?

    var keyNames: [String] { keys.map(\.name) }

    static func required<S>(
        _ name: String, _ path: WritableKeyPath<TrainConfig, S>, _ meaning: String, _ fields: [ConfigField<S>]
    ) -> ConfigSection {
        let defaults = TrainConfig()[keyPath: path]
        return ConfigSection(
            name: name, meaning: meaning, isOptional: false,
            keys: fields.map { Key(name: $0.name, type: $0.type, defaultValue: $0.yaml(defaults), meaning: $0.meaning) },
            decode: { config, values in
                guard let values else { return }
                var section = config[keyPath: path]
                try apply(values, to: &section, fields: fields, sectionName: name)
                config[keyPath: path] = section
            },
            problems: { config in check(config[keyPath: path], fields: fields, sectionName: name) },
            yaml: { config in fields.map { ($0.name, $0.yaml(config[keyPath: path])) } })
    }

    static func optional<S>(
        _ name: String, _ path: WritableKeyPath<TrainConfig, S?>, empty: S, _ meaning: String, _ fields: [ConfigField<S>]
    ) -> ConfigSection {
        ConfigSection(
            name: name, meaning: meaning, isOptional: true,
            keys: fields.map { Key(name: $0.name, type: $0.type, defaultValue: $0.yaml(empty), meaning: $0.meaning) },
            decode: { config, values in
                guard let values else { config[keyPath: path] = nil; return }
                var section = empty
                try apply(values, to: &section, fields: fields, sectionName: name)
                config[keyPath: path] = section
            },
            problems: { config in config[keyPath: path].map { check($0, fields: fields, sectionName: name) } ?? [] },
            yaml: { config in config[keyPath: path].map { section in fields.map { ($0.name, $0.yaml(section)) } } })
    }

    private static func apply<S>(_ values: [ConfigValue], to section: inout S, fields: [ConfigField<S>], sectionName: String) throws {
        for value in values {
            let name = String(value.key.dropFirst(sectionName.count + 1))
            guard let field = fields.first(where: { $0.name == name }) else {
                preconditionFailure("\(value.key) reached decoding without being checked against the schema")
            }
            try field.read(&section, value)
        }
    }

    private static func check<S>(_ section: S, fields: [ConfigField<S>], sectionName: String) -> [(key: String, expected: String, shown: String)] {
        fields.filter { !$0.accepts(section) }.map { ("\(sectionName).\($0.name)", $0.type, $0.yaml(section)) }
    }
}

/// Writing values as YAML that reads back to the same value.
enum YAMLText {
    /// Plain where that is safe and reads back as the same text (`runs/base`), double-quoted otherwise
    /// (`"yes"`, `"123"`, `"re:.*attn"`, `""`).
    static func scalar(_ text: String) -> String {
        let safe = text.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_./+-".unicodeScalars.contains($0)) }
        if safe, let first = text.unicodeScalars.first, first != "-", first != "+",
           Resolver.default.resolveTag(of: Node(text)) == .str {
            return text
        }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += String(format: "\\u%04X", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func list(_ texts: [String]) -> String { "[" + texts.map(scalar).joined(separator: ", ") + "]" }
}
