import ArgumentParser
import CBLAS
import Foundation
import SubspaceCore
import SubspaceModel
import SubspaceTraining

/// Full training steps (forward, backward, AdamW with clipping) of a freshly initialised model on random
/// tokens, in one process. Tokens per second, milliseconds per step, and model FLOP utilisation against
/// the GEMM rate measured in the same run (so a busy machine lowers both alike).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Training-step throughput and MFU of one process on synthetic tokens.")

    @Option(help: "gpt2, llama or qwen2.") var family: String = "gpt2"
    @Option(help: "Layers.") var layers: Int = 6
    @Option(help: "Width (hidden size).") var width: Int = 256
    @Option(help: "Attention heads.") var heads: Int = 8
    @Option(name: .customLong("kv-heads"), help: "Key/value heads (llama, qwen2; default: heads).") var kvHeads: Int?
    @Option(help: "Sequence length.") var context: Int = 256
    @Option(help: "Sequences per step.") var batch: Int = 8
    @Option(help: "Vocabulary size.") var vocab: Int = 256
    @Option(help: "Timed steps (after 2 warm-up steps).") var steps: Int = 10
    @Option(help: "Threads for BLAS and kernels (default: the cores this process may use).") var threads: Int?
    @Flag(help: "Print where the time goes, per kind of op, forward and backward.") var profile = false
    @Flag(name: .customLong("activation-checkpointing"),
          help: "Keep only each layer's input and recompute the layer in backward; the head and loss run in row chunks.")
    var activationCheckpointing = false
    @Option(name: .customLong("zero-stage"), help: "Under mpirun: data-parallel steps with this ZeRO stage (0-3); --batch is per rank.")
    var zeroStage: Int = 0
    @Option(help: "fp32, or bf16 (linear layers and the output head in bf16 with fp32 accumulation, as PyTorch's CPU autocast; needs AVX-512 BF16 or AMX). MFU is then against the measured bf16 GEMM rate.")
    var precision: Precision = .fp32
    @Option(name: .customLong("head-gates"),
            help: "none (no gates: what training uses), ones (every head gate at 1, no gate gradient) or gradients (gates at 1 and ∂L/∂ξ computed, as the heads study's plasticity pass): what the gates cost.")
    var headGates: HeadGatesMode = .none

    func validate() throws {
        guard ModelFamily(rawValue: family) != nil else { throw ValidationError("--family must be gpt2, llama or qwen2; got '\(family)'") }
        guard layers >= 1, width >= 1, heads >= 1, context >= 1, batch >= 1, vocab >= 2, steps >= 1 else {
            throw ValidationError("--layers, --width, --heads, --context, --batch, --steps must be ≥ 1 and --vocab ≥ 2")
        }
        guard (0...3).contains(zeroStage) else { throw ValidationError("--zero-stage must be 0, 1, 2 or 3") }
        guard width % heads == 0 else { throw ValidationError("--width (\(width)) must be divisible by --heads (\(heads))") }
        if let kvHeads, kvHeads < 1 || heads % kvHeads != 0 {
            throw ValidationError("--kv-heads must divide --heads (\(heads))")
        }
        let problems = modelConfig.problems()
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "; ")) }
        let estimate = MemoryEstimate(model: modelConfig, microBatch: batch, sequence: context, zeroStage: zeroStage,
                                      worldSize: MemoryEstimate.ranksOnThisNode(), checkpointing: checkpointing, precision: precision,
                                      keys: .init(vocab: "--vocab", layers: "--layers", width: "--width", batch: "--batch", sequence: "--context",
                                                  precision: "--precision"))
        if let (_, message) = estimate.problem(available: MemoryEstimate.machineBytes(), ranksHere: MemoryEstimate.ranksOnThisNode()) {
            throw ValidationError(message)
        }
    }

    var checkpointing: ActivationCheckpointing { activationCheckpointing ? .layers : .none }

    var modelConfig: ModelConfig {
        ModelConfig(family: ModelFamily(rawValue: family) ?? .gpt2, vocabularySize: vocab, hiddenSize: width,
                    layerCount: layers, headCount: heads, keyValueHeadCount: kvHeads, maxPositions: context)
    }

    func run() throws {
        if ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil {
            RankedJob.run { job in try runDistributed(job) }
        }
        let policy = ThreadPolicy.decide()
        policy.apply()
        Parallel.configure(threads: threads ?? policy.threads)
        print("# \(policy); using \(Parallel.workers) workers, each with single-threaded BLAS")
        if precision == .bf16 {
            let backend = try BF16GEMM.require("--precision bf16")
            print("# bf16 products: \(backend == .oneDNN ? "oneDNN, \(BF16GEMM.support.isa), \(BF16GEMM.threadCount) OpenMP threads" : "EMULATED through fp32 sgemm (SUBSPACE_BF16_EMULATE=1): not a speed figure")")
        }

        let config = modelConfig
        let model = Transformer(config: config)
        model.initialize(seed: 1)
        model.activationCheckpointing = checkpointing
        model.precision = precision
        if headGates != .none { model.headGates = [Float](repeating: 1, count: layers * heads) }
        model.computesGateGradients = headGates == .gradients
        let optimizer = ModelOptimizer(model: model, adam: AdamW(beta1: 0.9, beta2: 0.95, weightDecay: 0.1))
        var rng = RandomStream(seed: 7)
        let tokens = batch * context
        let ids = (0..<tokens).map { _ in Int32(rng.nextInt(below: vocab)) }
        let targets = (0..<tokens).map { _ in Int32(rng.nextInt(below: vocab)) }

        func trainStep() {
            model.zeroGradients()
            model.forward(ids: ids, targets: targets, B: batch, T: context)
            model.backward()
            optimizer.step(learningRate: 1e-4)
        }
        trainStep()
        trainStep()
        let peakBefore = measureGemmRate()
        let profiler = profile ? Profiler() : nil
        model.profiler = profiler
        var times: [Double] = []
        var optimizerSeconds = 0.0
        for _ in 0..<steps {
            let start = DispatchTime.now().uptimeNanoseconds
            model.zeroGradients()
            model.forward(ids: ids, targets: targets, B: batch, T: context)
            model.backward()
            let beforeOptimizer = DispatchTime.now().uptimeNanoseconds
            optimizer.step(learningRate: 1e-4)
            let end = DispatchTime.now().uptimeNanoseconds
            optimizerSeconds += Double(end - beforeOptimizer) * 1e-9
            times.append(Double(end - start) * 1e-9)
        }
        model.profiler = nil
        let stepSeconds = Stopwatch.median(times)
        let tokensPerSecond = Double(tokens) / stepSeconds

        // Model FLOPs per token: 6 per weight used in a matrix product (forward 2, backward 4), plus
        // attention's QKᵀ and PV: 12 · layers · context · (heads · head dimension), causal mask ignored
        // (the PaLM convention).
        let matmulWeights = model.layout.entries.filter { e in
            switch e.role {
            case .layer(_, .q), .layer(_, .k), .layer(_, .v), .layer(_, .o), .layer(_, .gate), .layer(_, .up), .layer(_, .down), .outputHead: true
            case .tokenEmbedding: config.tiedEmbeddings
            default: false
            }
        }.reduce(0) { $0 + $1.count }
        let flopsPerToken = 6 * Double(matmulWeights) + 12 * Double(layers * context * config.queryWidth)
        let achieved = flopsPerToken * tokensPerSecond * 1e-9
        // The attainable rate: the better of a measurement before and one after the timed steps, so a
        // moment of contention on a shared machine does not inflate the utilisation.
        let peak = max(peakBefore, measureGemmRate())
        if let profiler {
            let total = times.reduce(0, +)
            print("# where the time goes over \(steps) steps (\(String(format: "%.1f", total * 1000 / Double(steps))) ms/step):")
            var rows: [(String, Double, Double)] = Profiler.Op.allCases.map { ($0.rawValue, profiler.forward[$0] ?? 0, profiler.backward[$0] ?? 0) }
            rows.append(("optimizer (clip + AdamW)", optimizerSeconds, 0))
            let accounted = rows.reduce(0) { $0 + $1.1 + $1.2 }
            rows.append(("other", max(0, total - accounted), 0))
            for (name, f, b) in rows.sorted(by: { $0.1 + $0.2 > $1.1 + $1.2 }) where f + b > 0 {
                print(String(format: "#   %-26@ %7.2f ms/step  %5.1f%%   (forward %6.2f, backward %6.2f)",
                             name as NSString, (f + b) * 1000 / Double(steps), 100 * (f + b) / total,
                             f * 1000 / Double(steps), b * 1000 / Double(steps)))
            }
        }
        print("# \(family) layers=\(layers) width=\(width) heads=\(heads) context=\(context) batch=\(batch) vocab=\(vocab) " +
              "activation_checkpointing=\(checkpointing.rawValue) head_gates=\(headGates.rawValue): " +
              "\(matmulWeights) matmul weights, \(String(format: "%.1f", flopsPerToken / 1e6)) MFLOP/token, " +
              "\(String(format: "%.1f", achieved)) GFLOP/s achieved, \(precision.rawValue) gemm \(String(format: "%.1f", peak)) GFLOP/s")
        let memory = PeakMemory.read() ?? (0, 0)
        print(figures(["tokens_per_s": tokensPerSecond, "ms_per_step": stepSeconds * 1000, "mfu": achieved / peak,
                       "gflops": achieved, "gemm_gflops": peak, "threads": Parallel.workers,
                       "peak_rss_mb": Double(memory.peak) / 1_048_576]) + " precision=\(precision.rawValue)")
    }

    /// GFLOP/s of a square 1024 product in the run's precision — sgemm split over the same workers, or
    /// the bf16 GEMM on oneDNN's threads —: the attainable rate right now.
    func measureGemmRate() -> Double {
        let n = 1024
        var rng = RandomStream(seed: 3)
        let a = Tensor.normal([n, n], using: &rng), b = Tensor.normal([n, n], using: &rng)
        var c = Tensor(zeros: [n, n])
        var samples: [Double] = []
        if precision == .bf16 {
            let a16 = a.scalars.map(BFloat16.bits), b16 = b.scalars.map(BFloat16.bits)
            c.withUnsafeMutableBufferPointer { pc in
                for _ in 0..<10 {
                    samples.append(Stopwatch.time {
                        BF16GEMM.gemm(.none, .none, m: n, n: n, k: n, a: a16, lda: n, b: b16, ldb: n, c: pc.baseAddress!, ldc: n)
                    })
                }
            }
            return 2 * pow(Double(n), 3) / samples.dropFirst().min()! * 1e-9
        }
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            for _ in 0..<10 {
                samples.append(Stopwatch.time {
                    ParallelGEMM.gemm(.none, .none, m: n, n: n, k: n, a: pa.baseAddress!, lda: n, b: pb.baseAddress!, ldb: n,
                                      c: pc.baseAddress!, ldc: n)
                })
            }
        }}}
        return 2 * pow(Double(n), 3) / samples.dropFirst().min()! * 1e-9
    }

    /// Under mpirun: every rank trains on its own `--batch` sequences per step (weak scaling), with the
    /// given ZeRO stage; rank 0 prints global tokens/s and each rank's resident memory.
    func runDistributed(_ job: RankedJob) throws {
        if let threads { Parallel.configure(threads: threads) }
        if precision == .bf16 { try BF16GEMM.require("--precision bf16") }
        let world = job.world
        let config = modelConfig
        // Resident before the model exists: the process's fixed overhead (runtime, MPI, BLAS).
        let baseline = Double(PeakMemory.read()?.current ?? 0)
        let model = Transformer(config: config)
        if zeroStage < 3 { model.initialize(seed: 1) }  // stage 3: each rank initialises its shards only
        model.activationCheckpointing = checkpointing
        model.precision = precision
        if headGates != .none { model.headGates = [Float](repeating: 1, count: layers * heads) }
        model.computesGateGradients = headGates == .gradients
        let engine = ZeroEngine(model: model, communicator: world, stage: zeroStage,
                                adam: AdamW(beta1: 0.9, beta2: 0.95, weightDecay: 0.1), maxGradientNorm: 1)
        if zeroStage == 3 { engine.loadParameters { model.initialValues(seed: 1, range: $0, into: $1) } }
        let runner = StepRunner(engine: engine)
        var rng = RandomStream(seed: 7).split(UInt64(world.rank))
        let tokens = batch * context
        let ids = (0..<tokens).map { _ in Int32(rng.nextInt(below: vocab)) }
        let targets = (0..<tokens).map { _ in Int32(rng.nextInt(below: vocab)) }
        let micro = [MicroBatch(ids: ids, targets: targets, batch: batch, sequence: context)]
        for s in 0..<2 { _ = try runner.run(micro, learningRate: 1e-4, step: s) }
        var times: [Double] = []
        for s in 0..<steps {
            try world.barrier()
            times.append(try Stopwatch.time { _ = try runner.run(micro, learningRate: 1e-4, step: s + 2) })
        }
        let stepSeconds = Stopwatch.median(times)
        let memory = PeakMemory.read() ?? (0, 0)
        let all = try world.allGather(Double(memory.peak) / 1_048_576)
        let allNow = try world.allGather(Double(memory.current) / 1_048_576)
        let globalTokensPerSecond = Double(tokens * world.size) / stepSeconds
        // What a rank should hold: states/N + activations + buffers (MemoryEstimate), over the fixed overhead.
        let estimate = MemoryEstimate(model: config, microBatch: batch, sequence: context, zeroStage: zeroStage, worldSize: world.size,
                                      checkpointing: checkpointing, precision: precision)
        let mb = { (bytes: Double) in bytes / 1_048_576 }
        let resident = engine.residentBytes
        let baselines = try world.allGather(mb(baseline))
        job.log("ZeRO-\(zeroStage) expected per rank: states \(String(format: "%.0f", mb(estimate.bytes(.states)))) MB + activations " +
                "\(String(format: "%.0f", mb(estimate.bytes(.activations)))) MB + buffers \(String(format: "%.0f", mb(estimate.bytes(.buffers)))) MB " +
                "+ fixed overhead \(String(format: "%.0f", mb(baseline))) MB; the engine and model hold " +
                "\(String(format: "%.0f", mb(Double(resident.total)))) MB (\(resident))")
        job.log("ZeRO-\(zeroStage) on \(world.size) ranks × \(Parallel.workers) workers: peak RSS per rank " +
                all.map { String(format: "%.0f", $0) }.joined(separator: "/") + " MB, now " +
                allNow.map { String(format: "%.0f", $0) }.joined(separator: "/") + " MB")
        if job.isRoot {
            print(figures(["tokens_per_s": globalTokensPerSecond, "ms_per_step": stepSeconds * 1000, "ranks": world.size,
                           "zero_stage": zeroStage, "peak_rss_mb_max": all.max() ?? 0, "rss_mb_max": allNow.max() ?? 0,
                           "expected_mb": mb(estimate.total) + (baselines.max() ?? 0), "expected_states_mb": mb(estimate.bytes(.states)),
                           "expected_activations_mb": mb(estimate.bytes(.activations)), "expected_buffers_mb": mb(estimate.bytes(.buffers)),
                           "baseline_mb_max": baselines.max() ?? 0, "held_mb_max": mb(Double(resident.total)),
                           "threads_per_rank": Parallel.workers]) + " precision=\(precision.rawValue)")
        }
    }
}

/// `bench train --head-gates`: whether the model carries head gates, and whether their gradient is computed.
enum HeadGatesMode: String, ExpressibleByArgument, CaseIterable {
    case none, ones, gradients
}
