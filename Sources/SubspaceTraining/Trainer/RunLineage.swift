import Foundation
import SubspaceModel

/// What a run is, as far as its trajectory goes: the data it reads, where its model comes from, the
/// model's shape, and the settings that change the path of the weights (seed, batch, optimizer,
/// schedule, dropout, freezing, precision of the products, LoRA). Settings that only change how the same trajectory is computed or
/// recorded (ranks, ZeRO stage, micro-batch, buckets, evaluation, checkpoint cadence, `training.steps`,
/// `run.output`) are not part of it, so a run can be resharded or extended and still resume.
///
/// Written as `lineage.json` into the run folder and into every checkpoint's manifest; resuming a
/// checkpoint whose lineage differs is refused, naming both values, unless
/// `checkpoint.allow_other_lineage` is set.
public struct RunLineage: Equatable, Sendable {
    public static let fileName = "lineage.json"

    /// Ordered (name, value) pairs; the names are the config keys (or groups of keys) they come from.
    public var entries: [(key: String, value: String)]

    public static func == (a: RunLineage, b: RunLineage) -> Bool {
        a.entries.map(\.key) == b.entries.map(\.key) && a.entries.map(\.value) == b.entries.map(\.value)
    }

    public init(entries: [(key: String, value: String)]) { self.entries = entries }

    public init(config c: TrainConfig, model m: ModelConfig) {
        let t = c.training
        var e: [(String, String)] = []
        e.append(("data", "\(c.data.kind.rawValue) \(Self.absolute(c.data.path))"))
        e.append(("data.tokenizer", c.data.tokenizer == "bytes" ? "bytes" : Self.absolute(c.data.tokenizer)))
        e.append(("data.sequence", "\(c.data.sequence)"))
        switch c.model.source {
        case .new: e.append(("model.source", "new (seed \(c.run.seed), init_std \(c.model.initStd))"))
        case .hf: e.append(("model.source", "hf \(Self.absolute(c.model.path ?? ""))"))
        }
        e.append(("model.shape", "\(m.family.rawValue) \(m.layerCount) layers, width \(m.hiddenSize), heads \(m.headCount)/\(m.keyValueHeadCount), "
                  + "intermediate \(m.intermediateSize), vocab \(m.vocabularySize), context \(m.maxPositions)"))
        e.append(("model.dropout", "\(c.model.dropout)"))
        e.append(("run.seed", "\(c.run.seed)"))
        e.append(("training.global_batch", "\(t.globalBatch)"))
        e.append(("training.optimizer", "lr \(t.learningRate) min \(t.minLearningRate) \(t.schedule.rawValue) warmup \(t.warmup), "
                  + "weight_decay \(t.weightDecay), betas \(t.beta1)/\(t.beta2), epsilon \(t.epsilon), grad_clip \(t.gradClip.map { "\($0)" } ?? "null")"))
        e.append(("training.freeze", t.freeze.isEmpty ? "none" : t.freeze.joined(separator: ", ")))
        e.append((Self.precisionKey, t.precision.rawValue))
        if let l = c.lora {
            e.append(("lora", "rank \(l.rank), alpha \(l.alpha), targets \((l.targets ?? TrainConfig.LoRA.defaultTargets(m.family)).joined(separator: ",")), "
                      + "dropout \(l.dropout), rslora \(l.rslora), \(l.initialisation.rawValue)\(l.factors.map { " " + Self.absolute($0) } ?? "")\(l.adapter.map { " " + Self.absolute($0) } ?? "")"))
        } else {
            e.append(("lora", "none (full training)"))
        }
        entries = e
    }

    /// `path` made absolute from the current directory and standardised, so `runs/x` and `./runs/x/` agree.
    public static func absolute(_ path: String) -> String {
        let expanded = (path as NSString).expandingTildeInPath
        let full = expanded.hasPrefix("/") ? expanded : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(expanded)
        return (full as NSString).standardizingPath
    }

    /// "key: this → that" for every entry that differs (keys only one side has included).
    public func differences(from other: RunLineage) -> [String] {
        var out: [String] = []
        let mine = Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        let theirs = Dictionary(other.entries.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        for key in (entries.map(\.key) + other.entries.map(\.key).filter { mine[$0] == nil }) where mine[key] != theirs[key] {
            out.append("\(key): \(theirs[key] ?? "(absent)") → \(mine[key] ?? "(absent)")")
        }
        return out
    }

    /// As JSON text: an object of the entries (key order kept in `order`).
    public var json: String {
        var object: [String: Any] = [:]
        for (k, v) in entries { object[k] = v }
        object["order"] = entries.map(\.key)
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    public init?(json: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let order = object["order"] as? [String] else { return nil }
        var e: [(key: String, value: String)] = []
        for key in order {
            guard let value = object[key] as? String else { return nil }
            e.append((key, value))
        }
        // Lineages recorded before the precision was part of them are fp32 runs' (bf16 was new then).
        if !order.contains(Self.precisionKey) {
            let at = e.firstIndex { $0.key == "training.freeze" }.map { $0 + 1 } ?? e.count
            e.insert((Self.precisionKey, Precision.fp32.rawValue), at: at)
        }
        entries = e
    }

    static let precisionKey = "training.precision"

    public init?(file: String) {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        self.init(json: text)
    }
}
