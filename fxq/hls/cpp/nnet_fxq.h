// fxq's own hls4ml layers (registered through hls4ml's extension API by fxq/hls/extensions.py).
#ifndef NNET_FXQ_H_
#define NNET_FXQ_H_

#include "hls_stream.h"
#include "nnet_common.h"

namespace nnet {

// out[i] = in[index[i]], or the constant fill where index[i] is n_in: a constant gather (a
// broadcast of one operand of a merge over the other's shape, a padding with any value on
// any axis). Wires in io_parallel; io_stream holds the input, then writes the output.
struct fxq_gather_config {
    static const unsigned n_in;
    static const unsigned n_out;
    static const unsigned *const index;
};

template <class data_T, class res_T, typename CONFIG_T>
void fxq_gather(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_out]) {
    for (unsigned i = 0; i < CONFIG_T::n_out; i++) {
        #pragma HLS UNROLL
        unsigned k = CONFIG_T::index[i];
        res[i] = k < CONFIG_T::n_in ? res_T(data[k]) : CONFIG_T::template fill<res_T>();
    }
}

template <class data_T, class res_T, typename CONFIG_T>
void fxq_gather(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    typename data_T::value_type held[CONFIG_T::n_in];
    #pragma HLS ARRAY_PARTITION variable=held complete
    for (unsigned i = 0; i < CONFIG_T::n_in / data_T::size; i++) {
        #pragma HLS PIPELINE
        data_T in_data = data.read();
        for (unsigned j = 0; j < data_T::size; j++) {
            #pragma HLS UNROLL
            held[i * data_T::size + j] = in_data[j];
        }
    }
    for (unsigned i = 0; i < CONFIG_T::n_out / res_T::size; i++) {
        #pragma HLS PIPELINE
        res_T out_data;
        PRAGMA_DATA_PACK(out_data)
        for (unsigned j = 0; j < res_T::size; j++) {
            #pragma HLS UNROLL
            unsigned k = CONFIG_T::index[i * res_T::size + j];
            out_data[j] = k < CONFIG_T::n_in ? typename res_T::value_type(held[k])
                                             : CONFIG_T::template fill<typename res_T::value_type>();
        }
        res.write(out_data);
    }
}

// Clip to [lo, hi] with exact compares, as fxq simulates it: an input below lo gives lo, one
// above hi gives hi (both in the result type), any other its own value cast to the result
// type. The bounds are compared on the input's grid (lo rounded up, hi down to it); a bound
// outside the input type's range is decided in Python (below: 0 never, 1 compare, 2 always).
struct fxq_clip_config {
    static const unsigned n_in = 1;
    static const unsigned lo_mode = 1;
    static const unsigned hi_mode = 1;
};

template <class x_T, class res_T, typename CONFIG_T> res_T fxq_clip_one(x_T x) {
    res_T y = x;
    if (CONFIG_T::lo_mode == 2 || (CONFIG_T::lo_mode == 1 && x < CONFIG_T::template lo_in<x_T>()))
        y = CONFIG_T::template lo_out<res_T>();
    if (CONFIG_T::hi_mode == 2 || (CONFIG_T::hi_mode == 1 && x > CONFIG_T::template hi_in<x_T>()))
        y = CONFIG_T::template hi_out<res_T>();
    return y;
}

template <class data_T, class res_T, typename CONFIG_T>
void fxq_clip(const data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in]) {
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
        #pragma HLS UNROLL
        res[i] = fxq_clip_one<data_T, res_T, CONFIG_T>(data[i]);
    }
}

template <class data_T, class res_T, typename CONFIG_T>
void fxq_clip(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    for (unsigned i = 0; i < CONFIG_T::n_in / data_T::size; i++) {
        #pragma HLS PIPELINE
        data_T in_data = data.read();
        res_T out_data;
        PRAGMA_DATA_PACK(out_data)
        for (unsigned j = 0; j < data_T::size; j++) {
            #pragma HLS UNROLL
            out_data[j] = fxq_clip_one<typename data_T::value_type, typename res_T::value_type,
                                       CONFIG_T>(in_data[j]);
        }
        res.write(out_data);
    }
}

} // namespace nnet

#endif
