/// Anything wrong with a run configuration, naming where it came from and the dotted key.
///
/// `description` reads `configs/base.yaml:12: training.steps: expected an integer ≥ 1, got 0`, or
/// `--set training.steps=0: training.steps: …` when the value came from an override.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The config file cannot be read.
        case unreadable
        /// The file, or the value of an override, is not YAML.
        case syntax
        /// A section or key the schema does not have.
        case unknownKey
        /// A value of the wrong type or outside its key's range (`steps: ten`, `steps: 0`, `steps: 1.5`).
        case type
        /// Values that are fine alone but impossible together (`min_learning_rate` above `learning_rate`),
        /// or impossible for the number of ranks.
        case value
        /// An override that is not `key=value`.
        case override
        /// A file or folder the config names is missing or unusable.
        case file
    }

    public var kind: Kind
    /// The config file, `--set key=value` for an override, or nil for a config built in code.
    public var source: String?
    /// The line of the key in `source`, where known.
    public var line: Int?
    /// The dotted key (`training.global_batch`), or just the section; nil for whole-file problems.
    public var key: String?
    public var message: String
    /// Other keys the problem involves, tried in order when looking for the line to blame.
    var related: [String] = []

    public init(_ kind: Kind, source: String? = nil, line: Int? = nil, key: String?, _ message: String, related: [String] = []) {
        self.kind = kind
        self.source = source
        self.line = line
        self.key = key
        self.message = message
        self.related = related
    }

    public var description: String {
        var parts: [String] = []
        if let source { parts.append(line.map { "\(source):\($0)" } ?? source) }
        if let key { parts.append(key) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}

/// Where a value came from: a line of the config file or an override.
public struct ConfigOrigin: Equatable, Sendable {
    public var source: String
    public var line: Int?
    public init(source: String, line: Int? = nil) { self.source = source; self.line = line }
}
