import SubspaceTraining
import Foundation
import SubspaceModel
import Yams

/// The `study:` section of a Q/K freeze study config (configs/qk-freeze.yaml); every other section is
/// a `TrainConfig`, shared by all groups.
public struct StudySettings: Sendable, Equatable {
    /// The groups, run side by side where there are ranks enough.
    public var modes: [QKFreezeMode] = QKFreezeMode.allCases
    /// Seeds for repeated runs (initialisation and data order); nil: `run.seed` alone.
    public var seeds: [UInt64]? = nil
    /// Independent W_q and W_k, or W_k = W_q.
    public var qkInit: OrthogonalInit.Pairing = .independent
    /// Scale of the orthonormal W_q and W_k.
    public var gain: Float = 1
    /// Validation perplexity whose first crossing is timed; nil: the highest final perplexity of any
    /// group (the level every group reaches).
    public var targetPerplexity: Double? = nil
    /// H2 holds when |PPL_frozen − PPL_ortho| / PPL_ortho is below this.
    public var h2Tolerance: Double = 0.05
    /// H4 holds when PPL_frozen ≤ PPL_standard · (1 + this).
    public var h4Tolerance: Double = 0.10
    /// Write each group's final model (an HF folder) into its run folder.
    public var exportFinal = true

    public init() {}

    public var options: OrthogonalInit.Options { OrthogonalInit.Options(pairing: qkInit, gain: gain) }

    static let keys = ["modes", "seeds", "qk_init", "gain", "target_perplexity", "h2_tolerance", "h4_tolerance", "export_final"]

    /// The section as YAML, every key present (for the study's resolved config).
    public func resolvedYAML(defaultSeed: UInt64) -> String {
        func number(_ x: Double) -> String { String(describing: x) }
        return """
            study:
              modes: [\(modes.map(\.rawValue).joined(separator: ", "))]
              seeds: [\((seeds ?? [defaultSeed]).map(String.init).joined(separator: ", "))]
              qk_init: \(qkInit.rawValue)
              gain: \(gain)
              target_perplexity: \(targetPerplexity.map(number) ?? "null")
              h2_tolerance: \(number(h2Tolerance))
              h4_tolerance: \(number(h4Tolerance))
              export_final: \(exportFinal)

            """
    }
}

/// A study config: the shared training configuration and the `study:` section.
///
/// `TrainConfig` is strict about sections, so the `study:` section is split off first: its lines are
/// blanked (not removed) in the text handed to `TrainConfig.load(yaml:)`, so errors there still name the
/// right line. Overrides `study.key=value` go to the study section, all others to the training config.
public struct QKFreezeStudyConfig: Sendable, Equatable {
    public var train: TrainConfig
    public var study: StudySettings

    public init(train: TrainConfig, study: StudySettings = StudySettings()) {
        self.train = train
        self.study = study
    }

    /// The seeds the study runs.
    public var seeds: [UInt64] { study.seeds ?? [train.run.seed] }

    public static func load(path: String, overrides: [String] = []) throws -> QKFreezeStudyConfig {
        try load(yaml: TrainConfig.readYAML(path: path), source: path, overrides: overrides)
    }

    public static func load(yaml: String, source: String = "config", overrides: [String] = []) throws -> QKFreezeStudyConfig {
        let (trainYAML, studyNode) = try split(yaml: yaml, source: source)
        let isStudy: (String) -> Bool = { $0.hasPrefix("study.") || $0.hasPrefix("study=") }
        let train = try TrainConfig.load(yaml: trainYAML, source: source, overrides: overrides.filter { !isStudy($0) })
        var values: [String: ConfigValue] = [:]
        var order: [String] = []
        func add(_ value: ConfigValue) {
            if values[value.key] == nil { order.append(value.key) }
            values[value.key] = value
        }
        if let studyNode {
            for value in try entries(of: studyNode, origin: { ConfigOrigin(source: source, line: $0.mark?.line) }) { add(value) }
        }
        for override in overrides where isStudy(override) {
            let origin = ConfigOrigin(source: "--set \(override)", line: nil)
            guard let equals = override.firstIndex(of: "=") else {
                throw ConfigError(.override, source: origin.source, key: nil, "expected dotted.key=value (e.g. study.seeds=[1, 2, 3])")
            }
            let key = override[..<equals].trimmingCharacters(in: .whitespaces)
            let node: Node
            do {
                node = try Yams.compose(yaml: String(override[override.index(after: equals)...])) ?? Node("null")
            } catch {
                throw ConfigError(.syntax, source: origin.source, key: key, "the value is not valid YAML: \(error)")
            }
            if key == "study" {
                values = [:]
                order = []
                for value in try entries(of: node, origin: { _ in origin }) { add(value) }
            } else {
                let name = String(key.dropFirst("study.".count))
                try checkKey(name, origin: origin)
                add(ConfigValue(key: key, node: node, origin: origin))
            }
        }
        var study = StudySettings()
        for key in order { try decode(values[key]!, into: &study) }
        return QKFreezeStudyConfig(train: train, study: study)
    }

    // MARK: - Splitting and decoding

    /// The YAML without its `study:` section (lines blanked, so line numbers hold) and that section's node.
    static func split(yaml: String, source: String) throws -> (train: String, study: Node?) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(.syntax, source: source, key: nil, "not valid YAML: \(error)")
        }
        guard let root, case .mapping(let mapping) = root else { return (yaml, nil) }
        let pairs = Array(mapping)
        let studyIndices = pairs.indices.filter { pairs[$0].key.scalar?.string == "study" }
        guard let index = studyIndices.first else { return (yaml, nil) }
        if studyIndices.count > 1 {
            throw ConfigError(.syntax, source: source, line: pairs[studyIndices[1]].key.mark?.line, key: "study",
                              "appears twice" + (pairs[index].key.mark.map { " (first on line \($0.line))" } ?? ""))
        }
        let rest = pairs.enumerated().filter { $0.offset != index }.map(\.element)
        if let first = pairs[index].key.mark?.line {
            let last = index + 1 < pairs.count ? pairs[index + 1].key.mark.map { $0.line - 1 } : Int.max
            var lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if let last, first >= 1, first <= lines.count {
                for l in first...min(last, lines.count) { lines[l - 1] = "" }
                let blanked = lines.joined(separator: "\n")
                // Keep the blanked text only if it holds exactly the other sections.
                if let check = try? Yams.compose(yaml: blanked), case .mapping(let m) = check,
                   m.map(\.key.scalar?.string) == rest.map(\.key.scalar?.string) {
                    return (blanked, pairs[index].value)
                }
            }
        }
        // Fallback: the other sections re-serialised (line numbers in errors then refer to that text).
        let text = (try? Yams.serialize(node: Node.mapping(Node.Mapping(rest)))) ?? ""
        return (text, pairs[index].value)
    }

    static func entries(of node: Node, origin: (Node) -> ConfigOrigin) throws -> [ConfigValue] {
        switch node {
        case .scalar where node.tagName == .null:
            return []
        case .mapping(let mapping):
            var out: [ConfigValue] = []
            for (keyNode, valueNode) in mapping {
                let o = origin(keyNode)
                guard case .scalar(let scalar) = keyNode else {
                    throw ConfigError(.unknownKey, source: o.source, line: o.line, key: "study", "keys must be names")
                }
                try checkKey(scalar.string, origin: o)
                if out.contains(where: { $0.key == "study.\(scalar.string)" }) {
                    throw ConfigError(.syntax, source: o.source, line: o.line, key: "study.\(scalar.string)", "appears twice")
                }
                out.append(ConfigValue(key: "study.\(scalar.string)", node: valueNode, origin: o))
            }
            return out
        default:
            let o = origin(node)
            throw ConfigValue(key: "study", node: node, origin: o).typeError("a mapping of study keys (\(StudySettings.keys.joined(separator: ", ")))")
        }
    }

    static func checkKey(_ key: String, origin: ConfigOrigin) throws {
        guard !StudySettings.keys.contains(key) else { return }
        let hint = ConfigSuggestion.closest(to: key, among: StudySettings.keys).map { "; did you mean study.\($0)?" } ?? ""
        throw ConfigError(.unknownKey, source: origin.source, line: origin.line, key: "study.\(key)",
                          "unknown key\(hint); study takes \(StudySettings.keys.joined(separator: ", "))")
    }

    static func decode(_ value: ConfigValue, into study: inout StudySettings) throws {
        func fail(_ message: String) -> ConfigError {
            ConfigError(.value, source: value.origin.source, line: value.origin.line, key: value.key, message)
        }
        switch value.key {
        case "study.modes":
            let names = try value.texts("a list of modes (\(QKFreezeMode.names))")
            guard !names.isEmpty else { throw fail("needs at least one mode (\(QKFreezeMode.names))") }
            var modes: [QKFreezeMode] = []
            for name in names {
                guard let mode = QKFreezeMode(rawValue: name) else {
                    throw fail("'\(name)' is not a mode; the modes are \(QKFreezeMode.names)")
                }
                guard !modes.contains(mode) else { throw fail("lists \(name) twice") }
                modes.append(mode)
            }
            study.modes = modes
        case "study.seeds":
            if value.isNull { study.seeds = nil; return }
            let nodes: [Node]
            switch value.node {
            case .sequence(let s): nodes = Array(s)
            case .scalar: nodes = [value.node]
            default: throw value.typeError("a list of seeds (integers ≥ 0)")
            }
            let seeds = try nodes.map { try ConfigValue(key: value.key, node: $0, origin: value.origin).seed() }
            guard !seeds.isEmpty else { throw fail("needs at least one seed, or null for run.seed") }
            guard Set(seeds).count == seeds.count else { throw fail("lists a seed twice") }
            study.seeds = seeds
        case "study.qk_init":
            let name = try value.text("independent or shared")
            guard let pairing = OrthogonalInit.Pairing(rawValue: name) else {
                throw value.typeError("independent or shared")
            }
            study.qkInit = pairing
        case "study.gain":
            study.gain = try value.number(.positive)
        case "study.target_perplexity":
            if value.isNull { study.targetPerplexity = nil; return }
            let target: Double = try value.number(.positive)
            guard target >= 1 else { throw fail("a perplexity is at least 1, got \(target)") }
            study.targetPerplexity = target
        case "study.h2_tolerance":
            study.h2Tolerance = try value.number(.positive)
        case "study.h4_tolerance":
            study.h4Tolerance = try value.number(.nonNegative)
        case "study.export_final":
            study.exportFinal = try value.bool()
        default:
            preconditionFailure("study key \(value.key) was not checked")
        }
    }
}
