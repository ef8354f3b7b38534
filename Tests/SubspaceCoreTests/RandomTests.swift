import Testing
@testable import SubspaceCore

@Suite struct RandomTests {
    /// Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
    @Test func philoxKnownAnswers() {
        let zero = RandomStream.philox(counter: (0, 0, 0, 0), key: (0, 0))
        #expect([zero.0, zero.1, zero.2, zero.3] == [0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8])
        let ones = RandomStream.philox(counter: (.max, .max, .max, .max), key: (.max, .max))
        #expect([ones.0, ones.1, ones.2, ones.3] == [0x408F_276D, 0x41C8_3B0E, 0xA20B_C7C6, 0x6D54_51FD])
        let pi = RandomStream.philox(counter: (0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344),
                                     key: (0xA409_3822, 0x299F_31D0))
        #expect([pi.0, pi.1, pi.2, pi.3] == [0xD16C_FE09, 0x94FD_CCEB, 0x5001_E420, 0x2412_6EA1])
    }

    @Test func streamsAreReproducibleAndIndependent() {
        var a = RandomStream(seed: 42, stream: 3), b = RandomStream(seed: 42, stream: 3)
        let xs = (0..<100).map { _ in a.nextWord() }
        #expect(xs == (0..<100).map { _ in b.nextWord() })
        var c = RandomStream(seed: 42, stream: 4)
        #expect(xs != (0..<100).map { _ in c.nextWord() })
        // A child stream depends only on (parent, id), not on how much the parent has drawn.
        var parent = RandomStream(seed: 42)
        let before = parent.split(7)
        _ = parent.next()
        var x = before, y = parent.split(7)
        #expect(x.next() == y.next())
        #expect(parent.split(7).stream != parent.split(8).stream)
    }

    @Test func seekJumpsToABlock() {
        var a = RandomStream(seed: 5)
        for _ in 0..<40 { _ = a.nextWord() }  // 10 blocks of 4 words
        let tail = (0..<8).map { _ in a.nextWord() }
        var b = RandomStream(seed: 5)
        b.seek(toBlock: 10)
        #expect(tail == (0..<8).map { _ in b.nextWord() })
    }

    @Test func distributions() {
        var rng = RandomStream(seed: 1)
        let n = 200_000
        let u = (0..<n).map { _ in rng.nextUniform() }
        #expect(u.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = u.reduce(0, +) / Float(n)
        #expect(abs(mean - 0.5) < 0.005)
        let z = (0..<n).map { _ in rng.nextNormal() }
        let zm = z.reduce(0, +) / Float(n)
        let zv = z.map { ($0 - zm) * ($0 - zm) }.reduce(0, +) / Float(n)
        #expect(abs(zm) < 0.01 && abs(zv - 1) < 0.02, "normal mean \(zm) variance \(zv)")
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[rng.nextInt(below: 7)] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 500 }, "\(counts)")
    }

    @Test func permutationIsAPermutation() {
        var rng = RandomStream(seed: 9)
        let p = rng.permutation(1000)
        #expect(p.sorted() == Array(0..<1000))
        #expect(p != Array(0..<1000))
        var again = RandomStream(seed: 9)
        #expect(again.permutation(1000) == p)
        #expect(rng.permutation(0).isEmpty && rng.permutation(1) == [0])
    }
}
