/* neardup serve — the routes: a URL to its route, a route's name (for the
 * access log and /metrics) and the methods it takes. A leaf below the HTTP
 * layer, the handlers and the metrics. */
#include <string.h>

#include "serve.h"

static const struct {
	const char *path;
	enum srv_route route;
} routes[] = {
	{ "/v1/query", ROUTE_QUERY },       { "/v1/images", ROUTE_IMAGES },
	{ "/v1/duplicates", ROUTE_DUPLICATES }, { "/v1/info", ROUTE_INFO },
	{ "/healthz", ROUTE_HEALTHZ },      { "/metrics", ROUTE_METRICS },
};

enum srv_route srv_route_of(const char *url, const char **param)
{
	static const char img[] = "/v1/images/";
	*param = NULL;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(url, routes[i].path))
			return routes[i].route;
	if (!strncmp(url, img, sizeof(img) - 1) && url[sizeof(img) - 1] &&
	    !strchr(url + sizeof(img) - 1, '/')) {
		*param = url + sizeof(img) - 1;
		return ROUTE_IMAGE;
	}
	return ROUTE_UNKNOWN;
}

const char *srv_route_name(enum srv_route r)
{
	switch (r) {
	case ROUTE_QUERY: return "/v1/query";
	case ROUTE_IMAGES: return "/v1/images";
	case ROUTE_IMAGE: return "/v1/images/{id}";
	case ROUTE_DUPLICATES: return "/v1/duplicates";
	case ROUTE_INFO: return "/v1/info";
	case ROUTE_HEALTHZ: return "/healthz";
	case ROUTE_METRICS: return "/metrics";
	default: return "other";
	}
}

int srv_route_writes(enum srv_route r, const char *method)
{
	return (r == ROUTE_IMAGES && !strcmp(method, "POST")) ||
	       (r == ROUTE_IMAGE && !strcmp(method, "DELETE"));
}

int srv_route_allows(enum srv_route r, const char *method)
{
	switch (r) {
	case ROUTE_QUERY:
	case ROUTE_IMAGES: return !strcmp(method, "POST");
	case ROUTE_IMAGE: return !strcmp(method, "GET") || !strcmp(method, "DELETE");
	case ROUTE_UNKNOWN: return 0;
	default: return !strcmp(method, "GET");
	}
}
