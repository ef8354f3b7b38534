/// Every tensor of a model (and its adapters) with its size and whether it trains: what `subspace params`
/// prints, and what shows that a "frozen" tensor really is frozen.
public struct ParameterReport: Sendable {
    public struct Row: Sendable, Equatable {
        /// Subspace's name (LoRA factors: PEFT's file name).
        public let name: String
        /// The HF checkpoint tensor it is stored in (the fused `c_attn` for GPT-2's q, k, v).
        public let hfName: String
        public let shape: [Int]
        public let count: Int
        public let trainable: Bool
    }

    public let rows: [Row]
    public var total: Int { rows.reduce(0) { $0 + $1.count } }
    public var trainable: Int { rows.filter(\.trainable).reduce(0) { $0 + $1.count } }
    public var frozen: Int { total - trainable }
    public var trainablePercent: Double { total > 0 ? 100 * Double(trainable) / Double(total) : 0 }
    public var frozenPercent: Double { total > 0 ? 100 * Double(frozen) / Double(total) : 0 }

    public init(model: Transformer) {
        var hfOf: [TensorRole: String] = [:]
        for hf in HFNaming(config: model.config).tensors { for role in hf.parts { hfOf[role] = hf.name } }
        var rows = model.layout.entries.map {
            Row(name: $0.name, hfName: hfOf[$0.role] ?? $0.name, shape: $0.shape, count: $0.count,
                trainable: !model.frozen.contains($0.role))
        }
        if let adapters = model.adapters {
            for a in adapters.adapters {
                for b in [false, true] {
                    let key = PEFTAdapter.key(a, b: b)
                    let shape = b ? [a.module.outFeatures, adapters.config.rank] : [adapters.config.rank, a.module.inFeatures]
                    rows.append(Row(name: key, hfName: key, shape: shape, count: shape[0] * shape[1],
                                    trainable: b ? adapters.config.trainB : adapters.config.trainA))
                }
            }
        }
        self.rows = rows
    }

    /// A fixed-width table with totals.
    public var table: String {
        let width = max(40, rows.map(\.name.count).max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        var lines = [pad("tensor", width) + "  " + pad("shape", 14) + "  " + pad("count", 12) + "  state"]
        for r in rows {
            lines.append(pad(r.name, width) + "  " + pad(r.shape.map(String.init).joined(separator: "×"), 14) + "  "
                         + pad(String(r.count), 12) + "  " + (r.trainable ? "trainable" : "frozen"))
        }
        lines.append("total \(total)   trainable \(trainable) (\(String(format: "%.2f", trainablePercent))%)   frozen \(frozen) (\(String(format: "%.2f", frozenPercent))%)")
        return lines.joined(separator: "\n")
    }
}

import Foundation
