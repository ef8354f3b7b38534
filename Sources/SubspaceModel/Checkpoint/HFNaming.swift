/// The GEMM groups of a layer: weights multiplied together by one GEMM because they are adjacent.
public enum LinearGroup: Sendable, Hashable, CaseIterable {
    /// q|k|v, input: norm1 output.
    case qkv
    /// attention output projection, input: attention output.
    case o
    /// gate|up (or GPT-2's up alone), input: norm2 output.
    case gateUp
    /// MLP output projection, input: MLP activation.
    case down
}

/// A linear module as HF (and PEFT) name it, and where it sits in Subspace's layout: `parts` are stacked
/// [out, in] weights starting `rowOffset` rows into its group's output.
public struct LinearModule: Sendable, Hashable {
    /// HF module path, e.g. `model.layers.0.self_attn.q_proj` or `transformer.h.0.attn.c_attn`.
    public let path: String
    public let layer: Int
    public let group: LinearGroup
    public let parts: [LayerTensor]
    public let rowOffset: Int
    public let outFeatures: Int
    public let inFeatures: Int
}

/// One tensor of an HF checkpoint and how it is made of Subspace tensors: the parts stacked along the
/// output dimension, transposed when HF stores [in, out] (GPT-2's Conv1D).
public struct HFTensor: Sendable {
    public let name: String
    public let shape: [Int]
    public let parts: [TensorRole]
    public let transposed: Bool
}

/// HF names for each family: checkpoint tensors and linear modules.
public struct HFNaming: Sendable {
    public let config: ModelConfig

    public init(config: ModelConfig) { self.config = config }

    /// Every tensor an HF checkpoint of this model holds, in a stable order.
    public var tensors: [HFTensor] {
        let c = config
        let C = c.hiddenSize
        var out: [HFTensor] = []
        func plain(_ name: String, _ role: TensorRole, _ shape: [Int]) {
            out.append(HFTensor(name: name, shape: shape, parts: [role], transposed: false))
        }
        switch c.family {
        case .gpt2:
            plain("transformer.wte.weight", .tokenEmbedding, [c.vocabularySize, C])
            plain("transformer.wpe.weight", .positionEmbedding, [c.maxPositions, C])
            for l in 0..<c.layerCount {
                let h = "transformer.h.\(l)."
                plain(h + "ln_1.weight", .layer(l, .norm1Weight), [C])
                plain(h + "ln_1.bias", .layer(l, .norm1Bias), [C])
                out.append(HFTensor(name: h + "attn.c_attn.weight", shape: [C, 3 * C],
                                    parts: [.layer(l, .q), .layer(l, .k), .layer(l, .v)], transposed: true))
                out.append(HFTensor(name: h + "attn.c_attn.bias", shape: [3 * C],
                                    parts: [.layer(l, .qBias), .layer(l, .kBias), .layer(l, .vBias)], transposed: false))
                out.append(HFTensor(name: h + "attn.c_proj.weight", shape: [C, C], parts: [.layer(l, .o)], transposed: true))
                plain(h + "attn.c_proj.bias", .layer(l, .oBias), [C])
                plain(h + "ln_2.weight", .layer(l, .norm2Weight), [C])
                plain(h + "ln_2.bias", .layer(l, .norm2Bias), [C])
                out.append(HFTensor(name: h + "mlp.c_fc.weight", shape: [C, c.intermediateSize], parts: [.layer(l, .up)], transposed: true))
                plain(h + "mlp.c_fc.bias", .layer(l, .upBias), [c.intermediateSize])
                out.append(HFTensor(name: h + "mlp.c_proj.weight", shape: [c.intermediateSize, C], parts: [.layer(l, .down)], transposed: true))
                plain(h + "mlp.c_proj.bias", .layer(l, .downBias), [C])
            }
            plain("transformer.ln_f.weight", .finalNormWeight, [C])
            plain("transformer.ln_f.bias", .finalNormBias, [C])
            if !c.tiedEmbeddings { plain("lm_head.weight", .outputHead, [c.vocabularySize, C]) }
        case .llama, .qwen2:
            plain("model.embed_tokens.weight", .tokenEmbedding, [c.vocabularySize, C])
            for l in 0..<c.layerCount {
                let h = "model.layers.\(l)."
                plain(h + "input_layernorm.weight", .layer(l, .norm1Weight), [C])
                plain(h + "self_attn.q_proj.weight", .layer(l, .q), [c.queryWidth, C])
                plain(h + "self_attn.k_proj.weight", .layer(l, .k), [c.keyValueWidth, C])
                plain(h + "self_attn.v_proj.weight", .layer(l, .v), [c.keyValueWidth, C])
                if c.attentionBias {
                    plain(h + "self_attn.q_proj.bias", .layer(l, .qBias), [c.queryWidth])
                    plain(h + "self_attn.k_proj.bias", .layer(l, .kBias), [c.keyValueWidth])
                    plain(h + "self_attn.v_proj.bias", .layer(l, .vBias), [c.keyValueWidth])
                }
                plain(h + "self_attn.o_proj.weight", .layer(l, .o), [C, c.queryWidth])
                plain(h + "post_attention_layernorm.weight", .layer(l, .norm2Weight), [C])
                plain(h + "mlp.gate_proj.weight", .layer(l, .gate), [c.intermediateSize, C])
                plain(h + "mlp.up_proj.weight", .layer(l, .up), [c.intermediateSize, C])
                plain(h + "mlp.down_proj.weight", .layer(l, .down), [C, c.intermediateSize])
            }
            plain("model.norm.weight", .finalNormWeight, [C])
            if !c.tiedEmbeddings { plain("lm_head.weight", .outputHead, [c.vocabularySize, C]) }
        }
        return out
    }

    /// HF tensors a checkpoint may carry that are not parameters (buffers of older exports).
    public func isIgnorable(_ name: String) -> Bool {
        name.hasSuffix(".attn.bias") && config.family == .gpt2 && !name.contains("c_attn")
            || name.hasSuffix(".attn.masked_bias") || name.hasSuffix("rotary_emb.inv_freq")
            || (name == "lm_head.weight" && config.tiedEmbeddings)
    }

    /// Every linear module LoRA can target, by HF module path.
    public var linearModules: [LinearModule] {
        let c = config
        let (C, Q, K, I) = (c.hiddenSize, c.queryWidth, c.keyValueWidth, c.intermediateSize)
        var out: [LinearModule] = []
        for l in 0..<c.layerCount {
            switch c.family {
            case .gpt2:
                let h = "transformer.h.\(l)."
                out.append(LinearModule(path: h + "attn.c_attn", layer: l, group: .qkv, parts: [.q, .k, .v], rowOffset: 0, outFeatures: Q + 2 * K, inFeatures: C))
                out.append(LinearModule(path: h + "attn.c_proj", layer: l, group: .o, parts: [.o], rowOffset: 0, outFeatures: C, inFeatures: Q))
                out.append(LinearModule(path: h + "mlp.c_fc", layer: l, group: .gateUp, parts: [.up], rowOffset: 0, outFeatures: I, inFeatures: C))
                out.append(LinearModule(path: h + "mlp.c_proj", layer: l, group: .down, parts: [.down], rowOffset: 0, outFeatures: C, inFeatures: I))
            case .llama, .qwen2:
                let h = "model.layers.\(l)."
                out.append(LinearModule(path: h + "self_attn.q_proj", layer: l, group: .qkv, parts: [.q], rowOffset: 0, outFeatures: Q, inFeatures: C))
                out.append(LinearModule(path: h + "self_attn.k_proj", layer: l, group: .qkv, parts: [.k], rowOffset: Q, outFeatures: K, inFeatures: C))
                out.append(LinearModule(path: h + "self_attn.v_proj", layer: l, group: .qkv, parts: [.v], rowOffset: Q + K, outFeatures: K, inFeatures: C))
                out.append(LinearModule(path: h + "self_attn.o_proj", layer: l, group: .o, parts: [.o], rowOffset: 0, outFeatures: C, inFeatures: Q))
                out.append(LinearModule(path: h + "mlp.gate_proj", layer: l, group: .gateUp, parts: [.gate], rowOffset: 0, outFeatures: I, inFeatures: C))
                out.append(LinearModule(path: h + "mlp.up_proj", layer: l, group: .gateUp, parts: [.up], rowOffset: I, outFeatures: I, inFeatures: C))
                out.append(LinearModule(path: h + "mlp.down_proj", layer: l, group: .down, parts: [.down], rowOffset: 0, outFeatures: C, inFeatures: I))
            }
        }
        return out
    }
}
