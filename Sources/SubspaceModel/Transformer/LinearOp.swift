import SubspaceCore

/// One linear group of a layer (q|k|v, o, gate|up or down) as the layer calls it: the base product
/// out = inp · Wᵀ + b over the group's stacked [out, in] parts, wrapped by the group's LoRA adapters
/// (out += scale · dropout(inp) · Aᵀ · Bᵀ, as PEFT's `lora.Linear` wraps a `Linear`), and shown to the
/// model's `linearInputObserver` when asked. Every matrix product of a layer goes through `product`
/// (forward) and `productBackward`, which take the model's precision from its weights (`m.w`: fp32, or
/// with their bf16 copy under `Precision.bf16`). LoRA's adapter products stay fp32.
///
/// Parts are adjacent in the layout (q|k|v, gate|up; biases likewise), so a group is one GEMM.
struct LinearOp: Sendable {
    struct Part: Sendable {
        let weight: TensorRole
        let bias: TensorRole?
        let rows: Int
    }

    let layer: Int
    let group: LinearGroup
    let parts: [Part]
    /// IC and OC of the whole group; rows of the input and output are packed (stride = width).
    let inFeatures: Int
    let outFeatures: Int

    init(config c: ModelConfig, layer l: Int, group: LinearGroup) {
        self.layer = l
        self.group = group
        let (C, I) = (c.hiddenSize, c.intermediateSize)
        switch group {
        case .qkv:
            parts = [Part(weight: .layer(l, .q), bias: .layer(l, .qBias), rows: c.queryWidth),
                     Part(weight: .layer(l, .k), bias: .layer(l, .kBias), rows: c.keyValueWidth),
                     Part(weight: .layer(l, .v), bias: .layer(l, .vBias), rows: c.keyValueWidth)]
            inFeatures = C
        case .o:
            parts = [Part(weight: .layer(l, .o), bias: .layer(l, .oBias), rows: C)]
            inFeatures = c.queryWidth
        case .gateUp:
            parts = c.gatedMLP ? [Part(weight: .layer(l, .gate), bias: nil, rows: I), Part(weight: .layer(l, .up), bias: nil, rows: I)]
                               : [Part(weight: .layer(l, .up), bias: .layer(l, .upBias), rows: I)]
            inFeatures = C
        case .down:
            parts = [Part(weight: .layer(l, .down), bias: .layer(l, .downBias), rows: C)]
            inFeatures = I
        }
        outFeatures = parts.reduce(0) { $0 + $1.rows }
    }

    /// out (+)= inp · Wᵀ + b, then the adapters' share. With `observe`, the model's input observer sees
    /// the rows first (not during a checkpoint recomputation or generation).
    /// - out: [N, OC]; inp: [N, IC]; the sequences are B × T rows.
    func forward(_ m: Transformer, out: FloatPointer, inp: ConstFloatPointer, B: Int, T: Int,
                 accumulate: Bool = false, observe: Bool = false) {
        let N = B * T
        m.timed(.matmul) {
            product(m, out: out, inp: inp, N: N, accumulate: accumulate)
        }
        if let adapters = m.adapters {
            m.timed(.lora) {
                adapters.forward(layer: layer, group: group, out: out, ldOut: outFeatures, inp: inp, ldIn: inFeatures, N: N)
            }
        }
        if observe, let observer = m.linearInputObserver {
            observer.observe(layer: layer, group: group, rows: inp, stride: inFeatures, width: inFeatures, batch: B, sequence: T)
        }
    }

    /// dinp += ∂L/∂inp (base and adapters); weight and bias gradients accumulate where they train.
    func backward(_ m: Transformer, dinp: FloatPointer, dout: ConstFloatPointer, inp: ConstFloatPointer, N: Int) {
        m.timed(.matmul) {
            productBackward(m, dinp: dinp, dout: dout, inp: inp, N: N)
        }
        if let adapters = m.adapters {
            m.timed(.lora) {
                adapters.backward(layer: layer, group: group, dout: dout, ldDout: outFeatures, inp: inp, ldIn: inFeatures,
                                  dinp: dinp, ldDinp: inFeatures, N: N)
            }
        }
    }

    /// The base product: out (+)= inp · Wᵀ + b.
    func product(_ m: Transformer, out: FloatPointer, inp: ConstFloatPointer, N: Int, accumulate: Bool) {
        Linear.forward(out: out, ldOut: outFeatures, inp: inp, ldIn: inFeatures, weight: m.w(parts[0].weight),
                       bias: parts[0].bias.flatMap { m.pOpt($0) }, N: N, IC: inFeatures, OC: outFeatures, accumulate: accumulate)
    }

    /// The base product's backward. The input gradient is one GEMM over the whole stack; weight
    /// gradients are one GEMM when every part trains, else one per trainable part (a frozen part's GEMM
    /// is skipped).
    func productBackward(_ m: Transformer, dinp: FloatPointer, dout: ConstFloatPointer, inp: ConstFloatPointer, N: Int) {
        let (IC, OC) = (inFeatures, outFeatures)
        let weight = m.w(parts[0].weight)
        Linear.backward(dinp: dinp, ldDinp: IC, dweight: nil, dbias: nil, dout: dout, ldDout: OC, inp: inp, ldIn: IC,
                        weight: weight, N: N, IC: IC, OC: OC)
        let fused = parts.count > 1 && parts.allSatisfy { m.g($0.weight) != nil }
        if fused {
            Linear.backward(dinp: nil, ldDinp: IC, dweight: m.g(parts[0].weight), dbias: nil, dout: dout, ldDout: OC,
                            inp: inp, ldIn: IC, weight: weight, N: N, IC: IC, OC: OC)
        }
        var column = 0
        for part in parts {
            let dweight = fused ? nil : m.g(part.weight)
            let dbias = part.bias.flatMap { m.g($0) }
            if dweight != nil || dbias != nil {
                Linear.backward(dinp: nil, ldDinp: IC, dweight: dweight, dbias: dbias, dout: dout + column, ldDout: OC,
                                inp: inp, ldIn: IC, weight: m.w(part.weight), N: N, IC: IC, OC: part.rows)
            }
            column += part.rows
        }
    }
}
