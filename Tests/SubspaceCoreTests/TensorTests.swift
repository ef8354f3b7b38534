import Testing
@testable import SubspaceCore

@Suite struct TensorTests {
    @Test func shapesAndIndexing() {
        var t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        #expect(t.count == 6 && t.rank == 2)
        #expect(t[1, 2] == 6)
        t[0, 1] = 9
        #expect(t.scalars == [1, 9, 3, 4, 5, 6])
        #expect(t[row: 1].scalars == [4, 5, 6])
        #expect(t.reshaped([3, 2])[2, 0] == 5)
        #expect(t.transposed().scalars == [1, 4, 9, 5, 3, 6])
    }

    @Test func viewsShareStorageAndCopyOnWrite() {
        var flat = Tensor(shape: [8], values: [0, 1, 2, 3, 4, 5, 6, 7])
        var view = flat.view(offset: 2, shape: [2, 2])
        #expect(view.scalars == [2, 3, 4, 5])
        view[0, 0] = 100          // writing a view copies it: the owner is unchanged
        #expect(flat[flat: 2] == 2)
        #expect(view.scalars == [100, 3, 4, 5])
        flat.withMutableSlice(offset: 4, count: 2) { $0[0] = -1; $0[1] = -2 }
        #expect(flat.scalars == [0, 1, 2, 3, -1, -2, 6, 7])
        let copy = flat
        flat[flat: 0] = 42        // value semantics: the copy keeps its values
        #expect(copy[flat: 0] == 0 && flat[flat: 0] == 42)
    }

    @Test func arithmetic() {
        let a = Tensor(shape: [3], values: [1, 2, 3])
        let b = Tensor(shape: [3], values: [0.5, 0.5, 0.5])
        #expect((a - b).scalars == [0.5, 1.5, 2.5])
        #expect((a + b).scalars == [1.5, 2.5, 3.5])
        #expect(abs(a.norm - Float(14).squareRoot()) < 1e-6)
    }
}
