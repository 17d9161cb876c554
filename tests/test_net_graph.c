/*
 * test_net_graph.c - the compiled net's graph as JSON (common/net_graph.c),
 * which `nasctl export` writes into model.py: nothing before compile, one
 * entry per live node in topological order, parameter paths the net really
 * has, the logits node as output, and no graph at all for a node op the
 * format does not describe.  (tests/test_export.c checks the graph against
 * PyTorch.)
 */
#include "common/alloc.h"
#include "common/json.h"
#include "common/net.h"
#include "common/net_internal.h"
#include "common/refnets.h"
#include "tests/harness.h"

#include <string.h>

static nas_net *resnet20(int compile) {
    nas_net *net = NULL;
    char err[NAS_ERR_LEN];
    int out = -1;
    ck_assert_int_eq(nas_net_create(&net, 1, 28, 28, err), NAS_OK);
    ck_assert_int_eq(nas_refnet_build(net, "resnet20", 10, &out, err), NAS_OK);
    if (compile) ck_assert_int_eq(nas_net_compile(net, out, 2, err), NAS_OK);
    return net;
}

START_TEST(test_net_graph_lists_live_nodes_with_real_parameters) {
    nas_net *net = resnet20(0);
    ck_assert_ptr_null(nas_net_graph_json(net));
    nas_net_destroy(&net);
    net = resnet20(1);
    char *text = nas_net_graph_json(net);
    ck_assert_ptr_nonnull(text);
    nas_json *doc = NULL;
    char err[NAS_ERR_LEN];
    ck_assert_msg(nas_json_parse(text, strlen(text), 0, &doc, err) == NAS_OK, "%s", err);
    const nas_json *nodes = nas_json_get(doc, "nodes");
    ck_assert_int_eq(nodes->type, NAS_JSON_ARRAY);
    size_t live = 0;
    for (int i = 0; i < net->n_nodes; i++)
        live += net->nodes[i].live != 0;
    ck_assert_uint_eq(nodes->len, live);
    ck_assert(nas_json_get(doc, "output")->number == (double)net->output);
    ck_assert(nas_json_get(nas_json_at(nodes, nodes->len - 1), "id")->number ==
              (double)net->output); /* the logits come last */
    double prev = -1;
    int convs = 0, params = 0;
    for (size_t i = 0; i < nodes->len; i++) {
        const nas_json *nd = nas_json_at(nodes, i);
        double id = nas_json_get(nd, "id")->number;
        ck_assert(id > prev); /* topological: inputs come first */
        const nas_json *in = nas_json_get(nd, "in");
        for (size_t k = 0; k < in->len; k++)
            ck_assert(nas_json_at(in, k)->number < id);
        prev = id;
        const char *keys[] = {"weight", "bias", "running_mean", "running_var"};
        for (size_t k = 0; k < 4; k++) {
            const nas_json *p = nas_json_get(nd, keys[k]);
            if (!p || p->type != NAS_JSON_STRING) continue;
            ck_assert_msg(nas_net_param_find(net, p->str) != NULL, "%s", p->str);
            params++;
        }
        convs += strcmp(nas_json_get(nd, "op")->str, "conv") == 0;
    }
    ck_assert_int_eq(convs, 21); /* ResNet-20: stem, 18 in blocks, 2 projections */
    ck_assert_int_eq(params, nas_net_param_n(net));
    nas_json_free(&doc);
    nas_free(text);

    /* An op the format does not know gives no graph rather than a wrong one. */
    int saved = net->nodes[net->output].op;
    net->nodes[net->output].op = 99;
    ck_assert_ptr_null(nas_net_graph_json(net));
    net->nodes[net->output].op = saved;
    nas_net_destroy(&net);
}
END_TEST

static Suite *make_suite(void) {
    Suite *s = suite_create("net_graph");
    TCase *tc = tcase_create("graph");
    tcase_add_test(tc, test_net_graph_lists_live_nodes_with_real_parameters);
    suite_add_tcase(s, tc);
    return s;
}

NAS_TEST_MAIN(make_suite)
