// The query API's routes, by area.
#pragma once

#include "context.h"
#include "shop/infra/http.h"

namespace shop::query {

// GET /api/products, /api/products/{id}, /api/categories: public, cached.
void add_catalog_routes(http::Router& router, Context& ctx);
// GET /api/cart, /api/orders, /api/orders/{id} (signed in) and /api/admin/orders (admin or
// staff): read straight from the tables.
void add_account_routes(http::Router& router, Context& ctx);
// GET /api/users/me (signed in), /api/admin/users and /api/admin/users/{id} (admin): accounts,
// read straight from rm_users.
void add_user_routes(http::Router& router, Context& ctx);
// GET /api/admin/projections and /api/admin/projections/{name} (admin or staff): each
// projection's version, place, lag and rebuild.
void add_admin_routes(http::Router& router, Context& ctx);
// GET /api/schemas/events: the event types and their JSON Schemas; public, static.
void add_schema_routes(http::Router& router);

}  // namespace shop::query
