import Foundation
import SubspaceCore
import Yams

extension TrainConfig {
    /// Reads the YAML config at `path`, applies `overrides` (`--set` arguments, "dotted.key=value") and
    /// checks every section, key and value, then the values against each other (`validate()`).
    ///
    /// Missing sections and keys take the defaults of `TrainConfig`; a `lora` section, even `lora: {}`,
    /// turns LoRA on. Checks that need the number of ranks or the file system are `validate(worldSize:)`
    /// and `validateFiles()`.
    public static func load(path: String, overrides: [String] = []) throws -> TrainConfig {
        try load(yaml: readYAML(path: path), source: path, overrides: overrides)
    }

    /// A config file's text, or a `ConfigError` naming it (shared with the study configs).
    public static func readYAML(path: String) throws -> String {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw ConfigError(.unreadable, source: path, key: nil, "is a folder; --config takes a YAML file (see configs/)")
        }
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(.unreadable, source: path, key: nil, "cannot read the config: \(FileSystemMessage.reason(error))")
        }
    }

    /// `load(path:overrides:)` for YAML in hand; `source` names it in errors.
    public static func load(yaml: String, source: String = "config", overrides: [String] = []) throws -> TrainConfig {
        var document = try ConfigDocument(yaml: yaml, source: source)
        for override in overrides { try document.apply(override: override) }
        var config = TrainConfig()
        for section in schema {
            guard let present = document.sections.first(where: { $0.name == section.name }) else { continue }
            try section.decode(&config, present.values)
        }
        config.expandHome()
        do {
            try config.validate()
        } catch var error as ConfigError {
            document.locate(&error)
            throw error
        }
        return config
    }
}

extension TrainConfig {
    /// `~` and `~/…` at the start of a path key mean the home folder, as in a shell, for every path key
    /// (run.output, model.path, data.path, data.tokenizer, lora.factors, a checkpoint.resume path), so
    /// `~` never becomes a folder literally named `~`.
    mutating func expandHome() {
        // $HOME as a shell has it (Foundation's expansion reads the password database instead).
        let home = ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        func expand(_ path: String) -> String { path == "~" ? home : path.hasPrefix("~/") ? (home as NSString).appendingPathComponent(String(path.dropFirst(2))) : path }
        run.output = expand(run.output)
        model.path = model.path.map(expand)
        data.path = expand(data.path)
        data.tokenizer = expand(data.tokenizer)
        if var l = lora {
            l.factors = l.factors.map(expand)
            l.adapter = l.adapter.map(expand)
            lora = l
        }
        if case .path(let p) = checkpoint.resume { checkpoint.resume = .path(expand(p)) }
    }
}

/// The YAML document as the schema sees it: sections of keys, each value with the file line or the
/// override it came from. Every name in it has been checked against the schema.
struct ConfigDocument {
    struct Section {
        var name: String
        var origin: ConfigOrigin
        /// nil: the section is null (`lora: null`, or a bare `training:`).
        var values: [ConfigValue]?
    }

    let source: String
    var sections: [Section] = []

    init(yaml: String, source: String) throws {
        self.source = source
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(.syntax, source: source, key: nil, "not valid YAML: \(error)")
        }
        guard let root, !(root.tagName == .null && root.scalar != nil) else { return }
        guard case .mapping(let mapping) = root else {
            let value = ConfigValue(key: "", node: root, origin: ConfigOrigin(source: source, line: root.mark?.line))
            throw ConfigError(.type, source: source, line: root.mark?.line, key: nil,
                              "expected a mapping of sections (\(Self.sectionNames)), got \(value.shown)")
        }
        for (keyNode, valueNode) in mapping {
            let origin = ConfigOrigin(source: source, line: keyNode.mark?.line)
            let name = try Self.name(of: keyNode, in: nil, origin: origin)
            try Self.checkSection(name, origin: origin)
            if let earlier = sections.first(where: { $0.name == name }) {
                throw ConfigError(.syntax, source: source, line: origin.line, key: name,
                                  "appears twice" + (earlier.origin.line.map { " (first on line \($0))" } ?? ""))
            }
            sections.append(try Self.section(name, valueNode, origin: origin) { ConfigOrigin(source: source, line: $0.mark?.line) })
        }
    }

    /// Applies one `--set dotted.key=value`: the value is read as YAML (`null`, `[q_proj, v_proj]`, `{}`);
    /// a whole section can be replaced (`lora=null`), and setting a key of an absent or null section
    /// creates it (`lora.rank=16` turns LoRA on).
    mutating func apply(override: String) throws {
        let origin = ConfigOrigin(source: "--set \(override)", line: nil)
        guard let equals = override.firstIndex(of: "="), equals != override.startIndex else {
            throw ConfigError(.override, source: origin.source, key: nil,
                              "expected dotted.key=value (e.g. training.steps=100 or lora=null)")
        }
        let key = override[..<equals].trimmingCharacters(in: .whitespaces)
        let node: Node
        do {
            node = try Yams.compose(yaml: String(override[override.index(after: equals)...])) ?? Node("null")
        } catch {
            throw ConfigError(.syntax, source: origin.source, key: key, "the value is not valid YAML: \(error)")
        }
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let schema = try Self.checkSection(parts[0], origin: origin, whole: key)
        let index = sections.firstIndex { $0.name == parts[0] }
        switch parts.count {
        case 1:
            let section = try Self.section(key, node, origin: origin) { _ in origin }
            if let index { sections[index] = section } else { sections.append(section) }
        case 2:
            try Self.checkKey(parts[1], of: schema, origin: origin)
            let value = ConfigValue(key: key, node: node, origin: origin)
            guard let index else {
                sections.append(Section(name: parts[0], origin: origin, values: [value]))
                return
            }
            var values = sections[index].values ?? []
            if let existing = values.firstIndex(where: { $0.key == key }) { values[existing] = value } else { values.append(value) }
            sections[index].values = values
        default:
            let hint = schema.keyNames.contains(parts[1]) ? "\(parts[0]).\(parts[1]) takes a value, not keys" : "keys are section.key"
            throw ConfigError(.unknownKey, source: origin.source, key: key, "unknown key: \(hint) (e.g. training.steps)")
        }
    }

    /// Fills in where an error from `validate()` came from: the override that set its key or a related
    /// key (the latest change, so the likeliest cause), else the line of the first of them in the file,
    /// else just the file.
    func locate(_ error: inout ConfigError) {
        guard error.source == nil else { return }
        let origins = ([error.key].compactMap { $0 } + error.related).compactMap(origin(of:))
        let origin = origins.first { $0.line == nil } ?? origins.first ?? ConfigOrigin(source: source, line: nil)
        (error.source, error.line) = (origin.source, origin.line)
    }

    /// Where `key` (dotted, or a section) was set, if it was.
    private func origin(of key: String) -> ConfigOrigin? {
        let sectionName = String(key.prefix { $0 != "." })
        guard let section = sections.first(where: { $0.name == sectionName }) else { return nil }
        if key == sectionName { return section.origin }
        return section.values?.first { $0.key == key }?.origin
    }

    // MARK: - Reading sections and checking names

    private static func section(
        _ name: String, _ node: Node, origin: ConfigOrigin, originOfKey: (Node) -> ConfigOrigin
    ) throws -> Section {
        guard let schema = TrainConfig.schema.first(where: { $0.name == name }) else {
            preconditionFailure("section \(name) was not checked against the schema")
        }
        switch node {
        case .scalar where node.tagName == .null:
            return Section(name: name, origin: origin, values: nil)
        case .mapping(let mapping):
            var values: [ConfigValue] = []
            for (keyNode, valueNode) in mapping {
                let keyOrigin = originOfKey(keyNode)
                let key = try self.name(of: keyNode, in: name, origin: keyOrigin)
                try checkKey(key, of: schema, origin: keyOrigin)
                let dotted = "\(name).\(key)"
                if let earlier = values.first(where: { $0.key == dotted }) {
                    throw ConfigError(.syntax, source: keyOrigin.source, line: keyOrigin.line, key: dotted,
                                      "appears twice" + (earlier.origin.line.map { " (first on line \($0))" } ?? ""))
                }
                values.append(ConfigValue(key: dotted, node: valueNode, origin: keyOrigin))
            }
            return Section(name: name, origin: origin, values: values)
        default:
            let value = ConfigValue(key: name, node: node, origin: origin)
            throw value.typeError(schema.isOptional ? "a mapping of \(name) keys, {} or null" : "a mapping of \(name) keys")
        }
    }

    private static func name(of node: Node, in section: String?, origin: ConfigOrigin) throws -> String {
        guard case .scalar(let scalar) = node else {
            throw ConfigError(.unknownKey, source: origin.source, line: origin.line, key: section,
                              "keys must be names, got \(ConfigValue(key: "", node: node, origin: origin).shown)")
        }
        return scalar.string
    }

    static var sectionNames: String { TrainConfig.schema.map(\.name).joined(separator: ", ") }

    @discardableResult
    private static func checkSection(_ name: String, origin: ConfigOrigin, whole: String? = nil) throws -> ConfigSection {
        if let schema = TrainConfig.schema.first(where: { $0.name == name }) { return schema }
        var hint = ""
        if let match = ConfigSuggestion.closest(to: name, among: TrainConfig.schema.map(\.name)) {
            hint = "; did you mean \(match)?"
        } else if let dot = name.firstIndex(of: "."), TrainConfig.schema.contains(where: { $0.name == name[..<dot] }) {
            hint = "; nest it: \(name[..<dot]): {\(name[name.index(after: dot)...]): …}"
        } else if let alias = ConfigSuggestion.alias(for: name) {
            hint = "; did you mean \(alias)?"
        }
        throw ConfigError(.unknownKey, source: origin.source, line: origin.line, key: whole ?? name,
                          "unknown section\(hint); the sections are \(sectionNames)")
    }

    private static func checkKey(_ key: String, of section: ConfigSection, origin: ConfigOrigin) throws {
        guard !section.keyNames.contains(key) else { return }
        var hint = ""
        if let match = ConfigSuggestion.closest(to: key, among: section.keyNames) {
            hint = "; did you mean \(section.name).\(match)?"
        } else if let other = TrainConfig.schema.first(where: { ConfigSuggestion.closest(to: key, among: $0.keyNames) != nil }),
                  let match = ConfigSuggestion.closest(to: key, among: other.keyNames) {
            hint = "; did you mean \(other.name).\(match)?"
        } else if let alias = ConfigSuggestion.alias(for: key) {
            hint = "; did you mean \(alias)?"
        }
        throw ConfigError(.unknownKey, source: origin.source, line: origin.line, key: "\(section.name).\(key)",
                          "unknown key\(hint); \(section.name) takes \(section.keyNames.joined(separator: ", "))")
    }
}

/// "Did you mean" for names that are close to a valid one, and for names other trainers use.
public enum ConfigSuggestion {
    /// The name in `names` within a couple of edits of `name` (ignoring case, `_` and `-`), if one is.
    public static func closest(to name: String, among names: [String]) -> String? {
        let target = normalised(name)
        guard !target.isEmpty else { return nil }
        let scored = names.map { ($0, distance(target, normalised($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        let allowed = target.count <= 3 ? 0 : target.count <= 6 ? 1 : 2
        return best.1 <= allowed ? best.0 : nil
    }

    /// nanoGPT's and Hugging Face's names for these knobs.
    public static func alias(for name: String) -> String? {
        let aliases = [
            "lr": "training.learning_rate", "min_lr": "training.min_learning_rate",
            "max_iters": "training.steps", "max_steps": "training.steps", "iterations": "training.steps",
            "batch_size": "training.global_batch", "warmup_iters": "training.warmup", "warmup_steps": "training.warmup",
            "grad_clip_norm": "training.grad_clip", "max_grad_norm": "training.grad_clip",
            "n_layer": "model.layers", "num_hidden_layers": "model.layers",
            "n_head": "model.heads", "num_attention_heads": "model.heads", "num_key_value_heads": "model.kv_heads",
            "n_embd": "model.width", "hidden_size": "model.width", "intermediate_size": "model.intermediate",
            "block_size": "model.context", "n_positions": "model.context", "max_position_embeddings": "model.context",
            "vocab_size": "model.vocab", "r": "lora.rank", "lora_alpha": "lora.alpha",
            "target_modules": "lora.targets", "lora_dropout": "lora.dropout", "use_rslora": "lora.rslora",
            "out_dir": "run.output", "eval_interval": "evaluation.every",
        ]
        return aliases[name.lowercased()]
    }

    private static func normalised(_ name: String) -> [Character] {
        Array(name.lowercased().filter { $0 != "_" && $0 != "-" })
    }

    /// Edit distance counting a swap of neighbours as one edit (optimal string alignment).
    private static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
}
