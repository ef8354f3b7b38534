import SubspaceModel

/// What a linear module does, by its HF name. GPT-2's fused `c_attn` is its own kind (`qkv`).
public enum ModuleKind: String, Codable, Sendable, CaseIterable, Comparable {
    case q, k, v, qkv, o, gate, up, down

    public enum Category: String, Codable, Sendable, CaseIterable {
        case attention, mlp
    }

    /// Attention (q, k, v, fused qkv, o) or MLP (gate, up, down).
    public var category: Category {
        switch self {
        case .q, .k, .v, .qkv, .o: .attention
        case .gate, .up, .down: .mlp
        }
    }

    /// The kind of an HF module path such as `model.layers.3.self_attn.q_proj` or `transformer.h.0.mlp.c_fc`.
    public init?(modulePath path: String) {
        let suffixes: [(String, ModuleKind)] = [
            ("q_proj", .q), ("k_proj", .k), ("v_proj", .v), ("o_proj", .o),
            ("gate_proj", .gate), ("up_proj", .up), ("down_proj", .down),
            ("attn.c_attn", .qkv), ("attn.c_proj", .o), ("mlp.c_fc", .up), ("mlp.c_proj", .down),
        ]
        guard let kind = suffixes.first(where: { path.hasSuffix("." + $0.0) || path == $0.0 })?.1 else { return nil }
        self = kind
    }

    /// Declaration order: attention before MLP, as a block runs them.
    public static func < (lhs: ModuleKind, rhs: ModuleKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// One LoRA-targetable linear module whose update ΔW = W_tuned − W_base is analysed, as [out, in]
/// (PyTorch `Linear` orientation, which is LoRA's: ΔW ≈ B·A with A [r, in], B [out, r]).
public struct DeltaModule: Sendable, Equatable, Codable {
    /// The HF tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public let name: String
    /// The HF (and PEFT) module path, e.g. `transformer.h.0.attn.c_attn`.
    public let path: String
    public let layer: Int
    public let kind: ModuleKind
    public let outFeatures: Int
    public let inFeatures: Int

    public init(name: String, path: String, layer: Int, kind: ModuleKind, outFeatures: Int, inFeatures: Int) {
        self.name = name
        self.path = path
        self.layer = layer
        self.kind = kind
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
    }

    /// [out, in].
    public var shape: [Int] { [outFeatures, inFeatures] }

    /// The analysed modules of a model: every module `HFNaming.linearModules` lists.
    public static func modules(of config: ModelConfig) -> [DeltaModule] {
        HFNaming(config: config).linearModules.map { m in
            guard let kind = ModuleKind(modulePath: m.path) else {
                preconditionFailure("linear module \(m.path) has no known kind")
            }
            return DeltaModule(name: m.path + ".weight", path: m.path, layer: m.layer, kind: kind,
                               outFeatures: m.outFeatures, inFeatures: m.inFeatures)
        }
    }
}

/// A tensor that is not a LoRA target (embeddings, norms, biases, an untied head), whose change is
/// reported by norms only.
public struct DeltaTensorInfo: Sendable, Equatable, Codable {
    /// The HF tensor name.
    public let name: String
    /// As stored.
    public let shape: [Int]

    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

/// Squared Frobenius norms of a non-target tensor's change and of its base value.
public struct SquaredNorms: Sendable, Equatable {
    public var delta: Double
    public var base: Double

    public init(delta: Double, base: Double) {
        self.delta = delta
        self.base = base
    }
}
